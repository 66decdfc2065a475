package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestInventoryErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"unknown top-level key", "hosts:\n  - address: a\nservers: []\n",
			[]string{"inv.yml:3: unknown key \"servers\" in the inventory (allowed: defaults, hosts)"}},
		{"unknown host key", "hosts:\n  - address: a\n    adress: b\n",
			[]string{"inv.yml:3: unknown key \"adress\" in hosts[0]"}},
		{"unknown defaults key", "defaults:\n  user: x\n  groups: [a]\nhosts:\n  - address: a\n",
			[]string{"inv.yml:3: unknown key \"groups\" in defaults"}},
		{"bad port", "hosts:\n  - address: a\n    port: 70000\n",
			[]string{"inv.yml:3: hosts[0].port must be a number from 1 to 65535"}},
		{"bad sudo", "hosts:\n  - address: a\n    sudo: sometimes\n",
			[]string{"inv.yml:3: hosts[0].sudo must be true or false"}},
		{"groups not a list", "hosts:\n  - address: a\n    groups: web\n",
			[]string{"inv.yml:3: hosts[0].groups must be a list"}},
		{"host without address", "hosts:\n  - user: a\n",
			[]string{"inv.yml:2: hosts[0] needs a name or an address"}},
		{"duplicate name", "hosts:\n  - name: web\n    address: a\n  - name: web\n    address: b\n",
			[]string{"inv.yml:4: hosts[1]: host \"web\" is already listed at line 2"}},
		{"duplicate key", "hosts:\n  - address: a\n    address: b\n",
			[]string{"inv.yml:3: duplicate key \"address\""}},
		{"port in address", "hosts:\n  - address: a:22\n",
			[]string{"inv.yml:2: hosts[0].address \"a:22\" must be a host name or IP address"}},
		{"hosts not a list", "hosts: web1\n", []string{"inv.yml:1: hosts must be a list"}},
		{"no hosts", "defaults:\n  user: a\n", []string{"inv.yml:1: inventory lists no hosts"}},
		{"not a mapping", "- a\n- b\n", []string{"inv.yml:1: the inventory must be a mapping"}},
		{"invalid yaml", "hosts: [a\n", []string{"inv.yml: invalid YAML"}},
		{"empty", "", []string{"inv.yml: inventory is empty"}},
		{"every error at once", "hosts:\n  - address: a\n    colour: red\n  - address: b\n    port: x\n",
			[]string{"inv.yml:3: unknown key \"colour\"", "inv.yml:5: hosts[1].port"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "inv.yml")
			writeFile(t, filepath.Dir(path), "inv.yml", tc.yaml)
			_, err := loadInventory(path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), filepath.Dir(path)+"/"+w) && !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file %s:\n%v", path, err)
			}
		})
	}
}

// TestInventoryResolution checks defaults, relative paths and precedence:
// a host's own entry, then the command line, then the inventory defaults.
func TestInventoryResolution(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "inv.yml", `defaults:
  user: vigil
  port: 2222
  key: keys/default
  password_env: INV_PW
  sudo: true
  known_hosts: kh
hosts:
  - name: web1
    address: 192.0.2.1
    groups: [web, prod]
  - address: 192.0.2.2
    port: 22
    user: admin
    key: [/abs/k1, k2]
    sudo: false
`)
	env := testEnv(t, map[string]string{"INV_PW": "pw", "CLI_PW": "cli"})
	tf := targetFlags{inventory: path, workers: 1, connectTimeout: 1}
	jobs, err := tf.plan(env)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("%d jobs", len(jobs))
	}
	a, b := jobs[0], jobs[1]
	if a.Name != "web1" || a.SSH.Host != "192.0.2.1" || a.SSH.Port != 2222 || a.SSH.User != "vigil" ||
		a.SSH.KeyFiles[0] != filepath.Join(dir, "keys/default") || a.SSH.Password != "pw" || !a.SSH.Sudo ||
		a.SSH.KnownHostsFile != filepath.Join(dir, "kh") || strings.Join(a.Groups, ",") != "web,prod" {
		t.Errorf("web1 = %+v %+v", a, *a.SSH)
	}
	if b.Name != "192.0.2.2" || b.SSH.Port != 22 || b.SSH.User != "admin" || b.SSH.Sudo ||
		strings.Join(b.SSH.KeyFiles, ",") != "/abs/k1,"+filepath.Join(dir, "k2") {
		t.Errorf("second host = %+v %+v", b, *b.SSH)
	}

	// Flags given on the command line beat the inventory's defaults, not a
	// host's own settings.
	tf = targetFlags{inventory: path, workers: 1, connectTimeout: 1, passwordEnv: "CLI_PW", knownHosts: "/cli/kh",
		keys: listFlag{values: []string{"/cli/key"}}, set: map[string]bool{"password-env": true, "known-hosts": true, "key": true}}
	jobs, err = tf.plan(env)
	if err != nil {
		t.Fatal(err)
	}
	if o := jobs[0].SSH; o.Password != "cli" || o.KnownHostsFile != "/cli/kh" || o.KeyFiles[0] != "/cli/key" {
		t.Errorf("command line did not override the defaults: %+v", *o)
	}
	if o := jobs[1].SSH; o.KeyFiles[0] != "/abs/k1" {
		t.Errorf("command line overrode a host's own key: %+v", *o)
	}
}

// FuzzInventory: any input parses or fails with an error naming the file,
// never panics.
func FuzzInventory(f *testing.F) {
	f.Add("hosts:\n  - name: a\n    address: 192.0.2.1\n    port: 22\n    groups: [x]\n")
	f.Add("defaults:\n  user: u\n  key: [a, b]\n  sudo: true\nhosts:\n  - address: '[::1]'\n")
	f.Add("hosts: [{address: a, port: 0}, {name: a}]\n")
	f.Add("hosts:\n  - &x {address: a}\n  - *x\n")
	f.Fuzz(func(t *testing.T, data string) {
		inv, err := parseInventory("inv.yml", []byte(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "inv.yml") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		for _, h := range inv.Hosts {
			if h.Name == "" || h.Address == "" {
				t.Errorf("host without name or address: %+v", h)
			}
		}
	})
}

func FuzzHostSpec(f *testing.F) {
	for _, s := range []string{"u@h", "h:22", "[::1]:2", "::1", "@", "a@[", "[]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		h, err := parseHostSpec(spec)
		if err == nil && (h.Address == "" || h.Name == "" || h.Port < 0 || h.Port > 65535) {
			t.Errorf("parseHostSpec(%q) = %+v", spec, h)
		}
	})
}
