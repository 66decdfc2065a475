package rule

import "sort"

// ParamKind is the type a check parameter must have.
type ParamKind int

// The parameter kinds.
const (
	KindString ParamKind = iota
	KindInt
	KindBool
	KindList  // a YAML list, or a comma-joined string (list variables)
	KindMode  // octal file mode
	KindShell // a POSIX sh script: variables are shell-quoted into it
)

// ParamSpec describes one parameter of a check method.
type ParamSpec struct {
	Kind     ParamKind
	Required bool
	Enum     []string // allowed values, when restricted
}

// MethodSpec describes a check method's parameters. OneOf lists parameter
// groups of which at least one must be present (file_permissions needs one
// of mode, owner, group).
type MethodSpec struct {
	Params map[string]ParamSpec
	OneOf  [][]string
}

var comparators = []string{"==", "!=", "<", "<=", ">", ">="}

// Methods is every check method the engine implements, with its parameters.
var Methods = map[string]MethodSpec{
	"config_value": {Params: map[string]ParamSpec{
		"path":         {Kind: KindString, Required: true},
		"key":          {Kind: KindString, Required: true},
		"expected":     {Kind: KindString, Required: true},
		"delimiter":    {Kind: KindString},
		"comparator":   {Kind: KindString, Enum: comparators},
		"dropin_dir":   {Kind: KindString},
		"scan_pattern": {Kind: KindString},
	}},
	"sshd_effective_config": {Params: map[string]ParamSpec{
		"key":        {Kind: KindString, Required: true},
		"expected":   {Kind: KindString, Required: true},
		"comparator": {Kind: KindString, Enum: comparators}, // Vigil extension
	}},
	"sysctl_value": {Params: map[string]ParamSpec{
		"key":        {Kind: KindString, Required: true},
		"expected":   {Kind: KindString, Required: true},
		"comparator": {Kind: KindString, Enum: comparators},
	}},
	"package_state": {Params: map[string]ParamSpec{
		"name":  {Kind: KindString, Required: true},
		"state": {Kind: KindString, Required: true, Enum: []string{"present", "absent"}},
	}},
	"package_installed": nameOnly(),
	"package_absent":    nameOnly(),
	"dpkg_installed":    nameOnly(),
	"dpkg_absent":       nameOnly(),
	"service_state": {Params: map[string]ParamSpec{
		"name":    {Kind: KindString, Required: true},
		"enabled": {Kind: KindBool},
		"active":  {Kind: KindBool},
		"masked":  {Kind: KindBool}, // Vigil extension: is-enabled says "masked"
	}, OneOf: [][]string{{"enabled", "active", "masked"}}},
	"service_enabled":  nameOnly(),
	"service_active":   nameOnly(),
	"file_permission":  filePerm(),
	"file_permissions": filePerm(),
	"file_exists":      pathOnly(),
	"file_absent":      pathOnly(),
	"file_content": {Params: map[string]ParamSpec{
		"path":             {Kind: KindString, Required: true},
		"expected_content": {Kind: KindString, Required: true},
	}},
	"file_content_match": {Params: map[string]ParamSpec{
		"path":    {Kind: KindString, Required: true},
		"pattern": {Kind: KindString, Required: true},
	}},
	"mount_option": {Params: map[string]ParamSpec{
		"mount_point": {Kind: KindString, Required: true},
		"options":     {Kind: KindList, Required: true},
	}},
	"kernel_module_state": {Params: map[string]ParamSpec{
		"name":  {Kind: KindString, Required: true},
		"state": {Kind: KindString, Required: true, Enum: []string{"disabled", "blacklisted"}},
	}},
	"audit_rule_exists": {Params: map[string]ParamSpec{
		"rule": {Kind: KindString, Required: true},
	}},
	"grub_parameter": {Params: map[string]ParamSpec{
		"key":        {Kind: KindString, Required: true},
		"expected":   {Kind: KindString},
		"comparator": {Kind: KindString, Enum: comparators}, // Vigil extension
	}},
	"selinux_state": {Params: map[string]ParamSpec{
		"state": {Kind: KindString, Required: true, Enum: []string{"enforcing", "permissive", "disabled"}},
	}},
	"apparmor_state": {Params: map[string]ParamSpec{
		"state": {Kind: KindString, Required: true, Enum: []string{"enforcing", "loaded"}},
	}},
	"systemd_target": {Params: map[string]ParamSpec{
		"expected":     {Kind: KindString},
		"not_expected": {Kind: KindString},
	}, OneOf: [][]string{{"expected", "not_expected"}}},
	"command": {Params: map[string]ParamSpec{
		"run":                 {Kind: KindShell},
		"cmd":                 {Kind: KindShell},
		"expected_exit":       {Kind: KindInt},
		"expected_stdout":     {Kind: KindString},
		"not_assessable_exit": {Kind: KindInt},
		"timeout":             {Kind: KindInt}, // seconds; Vigil extension
	}, OneOf: [][]string{{"run", "cmd"}}},
	// special_files (Vigil extension): world-writable, set-id and ownerless
	// files found by one walk of the local filesystems per scan.
	"special_files": {Params: map[string]ParamSpec{
		"kind":       {Kind: KindString, Required: true, Enum: []string{"world_writable_files", "world_writable_dirs_not_sticky", "suid", "sgid", "unowned", "ungrouped"}},
		"authorized": {Kind: KindList},
	}},
	"set_compare": {Params: map[string]ParamSpec{
		"observed_command": {Kind: KindShell, Required: true},
		"authorized":       {Kind: KindList, Required: true},
		"alias_separator":  {Kind: KindString},
	}},
}

func nameOnly() MethodSpec {
	return MethodSpec{Params: map[string]ParamSpec{"name": {Kind: KindString, Required: true}}}
}

func pathOnly() MethodSpec {
	return MethodSpec{Params: map[string]ParamSpec{"path": {Kind: KindString, Required: true}}}
}

func filePerm() MethodSpec {
	return MethodSpec{Params: map[string]ParamSpec{
		"path":  {Kind: KindString, Required: true},
		"mode":  {Kind: KindMode},
		"owner": {Kind: KindString},
		"group": {Kind: KindString},
		// max_mode (Vigil extension): passes when the file has no permission
		// bit beyond this mode, i.e. "this mode or more restrictive".
		"max_mode": {Kind: KindMode},
	}, OneOf: [][]string{{"mode", "owner", "group", "max_mode"}}}
}

// MethodNames returns the check method names, sorted.
func MethodNames() []string {
	out := make([]string, 0, len(Methods))
	for m := range Methods {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Mechanisms is every remediation mechanism the format knows.
var Mechanisms = map[string]bool{
	"config_set": true, "config_set_dropin": true, "config_append": true,
	"file_content": true, "file_absent": true, "file_permissions": true,
	"sysctl_set": true, "mount_option_set": true, "kernel_module_disable": true,
	"selinux_boolean_set": true, "audit_rule_set": true, "service_enabled": true,
	"service_disabled": true, "service_masked": true, "package_present": true,
	"package_absent": true, "apt_present": true, "apt_absent": true,
	"pam_module_configure": true, "pam_module_arg": true,
	"authselect_feature_enable": true, "dconf_set": true,
	"crypto_policy_set": true, "crypto_policy_subpolicy": true, "cron_job": true,
	"grub_parameter_set": true, "grub_parameter_remove": true,
	"command_exec": true, "manual": true,
}

// Capabilities is every capability name a `when` gate may use.
var Capabilities = map[string]bool{
	"apt": true, "dpkg": true, "rpm": true, "systemd": true, "sshd_config_d": true,
	"authselect": true, "pam_faillock": true, "pam_pwquality": true,
	"selinux": true, "apparmor": true, "auditd": true, "firewalld": true,
	"nftables": true, "nftables_active": true, "ufw": true, "rsyslog": true,
	"rsyslog_active": true, "journald": true, "chronyd": true, "cron": true,
	"gdm": true, "dconf": true, "sssd": true, "sssd_configured": true,
	"directory_joined": true, "fips_mode": true, "crypto_policies": true,
	"grub_bls": true, "aide": true,
	// Vigil additions.
	"sshd": true, "sudo": true, "grub": true, "iptables": true,
	"timesyncd": true, "ntp": true, "at": true, "uefi": true, "pam": true,
	"faillock_conf": true, "pwquality_conf": true, "auditd_active": true,
	"journald_active": true, "selinux_enforcing": true, "apparmor_enabled": true,
	"firewalld_active": true, "ufw_active": true, "chronyd_active": true,
	"tmp_mount": true, "container": true, "xorg": true, "postfix": true,
	"snap": true, "dnf": true, "yum": true, "usbguard": true, "fapolicyd": true,
	"opensc": true, "tmux": true, "libuser": true, "ipv6": true,
	"kernel_modules": true, "live_kernel": true,
}

// CapabilityNames returns the known capability names, sorted.
func CapabilityNames() []string {
	out := make([]string, 0, len(Capabilities))
	for c := range Capabilities {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
