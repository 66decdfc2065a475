package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilfleet/vigil/engine/rule"
)

// Config holds variable values and capability overrides from their tiers.
// Resolution, highest first: command line (CLI), per-host file, per-group
// file, conf.d/*.yml, the site's defaults.yml, the corpus's defaults.yml.
//
// On disk (LoadConfig's dir, e.g. /etc/vigil):
//
//	defaults.yml        site-wide values
//	conf.d/*.yml        drop-ins, applied in name order
//	groups/<group>.yml  values for hosts in a group
//	hosts/<host>.yml    values for one host (by name or address)
//
// Each file has the keys `variables` (name: value; a list joins with commas)
// and `capabilities` (name: true|false, forcing detection).
type Config struct {
	Corpus     map[string]string
	Site       map[string]string
	ConfD      map[string]string
	Groups     map[string]map[string]string
	Hosts      map[string]map[string]string
	CLI        map[string]string
	CapForce   map[string]bool            // from defaults.yml and conf.d
	GroupCaps  map[string]map[string]bool // per group
	HostCaps   map[string]map[string]bool // per host
	CLICapsSet map[string]bool            // from the command line
}

// NewConfig returns an empty configuration.
func NewConfig() *Config {
	return &Config{
		Corpus: map[string]string{}, Site: map[string]string{}, ConfD: map[string]string{},
		Groups: map[string]map[string]string{}, Hosts: map[string]map[string]string{}, CLI: map[string]string{},
		CapForce: map[string]bool{}, GroupCaps: map[string]map[string]bool{}, HostCaps: map[string]map[string]bool{},
		CLICapsSet: map[string]bool{},
	}
}

// LoadConfig reads a configuration directory (see Config). A missing
// directory is an empty configuration; a malformed file is an error naming
// the file, line and key.
func LoadConfig(dir string) (*Config, error) {
	c := NewConfig()
	if dir == "" {
		return c, nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	var errs []string
	load := func(path string, vars map[string]string, caps map[string]bool) {
		if err := loadVarFile(path, vars, caps); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err.Error())
		}
	}
	load(filepath.Join(dir, "defaults.yml"), c.Site, c.CapForce)
	confd, _ := filepath.Glob(filepath.Join(dir, "conf.d", "*.yml"))
	sort.Strings(confd)
	for _, f := range confd {
		load(f, c.ConfD, c.CapForce)
	}
	for sub, vars := range map[string]map[string]map[string]string{"groups": c.Groups, "hosts": c.Hosts} {
		caps := c.GroupCaps
		if sub == "hosts" {
			caps = c.HostCaps
		}
		files, _ := filepath.Glob(filepath.Join(dir, sub, "*.yml"))
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".yml")
			vars[name], caps[name] = map[string]string{}, map[string]bool{}
			load(f, vars[name], caps[name])
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return c, nil
}

// LoadCorpusDefaults reads the corpus's own defaults: defaults.yml in the
// rules directory, then defaults.d/*.yml in name order (one file per part of
// the corpus, so authors of different categories never edit one file). A
// corpus without them is fine; a variable defined twice is an error, since
// one of the two values would be silently lost.
func (c *Config) LoadCorpusDefaults(rulesDir string) error {
	files := []string{filepath.Join(rulesDir, "defaults.yml")}
	more, _ := filepath.Glob(filepath.Join(rulesDir, "defaults.d", "*.yml"))
	sort.Strings(more)
	files = append(files, more...)
	origin := map[string]string{}
	for _, f := range files {
		vars := map[string]string{}
		err := loadVarFile(f, vars, nil)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for k, v := range vars {
			if prev, dup := origin[k]; dup {
				return fmt.Errorf("%s: variable %s is already defined in %s", f, k, prev)
			}
			origin[k] = f
			c.Corpus[k] = v
		}
	}
	return nil
}

// loadVarFile reads one variables file strictly.
func loadVarFile(path string, vars map[string]string, caps map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return nil
		}
		return fmt.Errorf("%s: invalid YAML: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: must be a mapping with `variables` and `capabilities`", path, top.Line)
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "variables":
			if err := readVars(path, v, vars); err != nil {
				return err
			}
		case "capabilities":
			if caps == nil {
				return fmt.Errorf("%s:%d: capabilities cannot be forced in the corpus defaults", path, k.Line)
			}
			if err := readCaps(path, v, caps); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s:%d: unknown key %q (allowed: variables, capabilities)", path, k.Line, k.Value)
		}
	}
	return nil
}

func readVars(path string, n *yaml.Node, vars map[string]string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: variables must be a mapping of name: value", path, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			vars[k.Value] = v.Value
		case yaml.SequenceNode:
			items := make([]string, 0, len(v.Content))
			for _, c := range v.Content {
				if c.Kind != yaml.ScalarNode {
					return fmt.Errorf("%s:%d: variables.%s: list items must be plain values", path, c.Line, k.Value)
				}
				items = append(items, c.Value)
			}
			vars[k.Value] = strings.Join(items, ",")
		default:
			return fmt.Errorf("%s:%d: variables.%s: must be a value or a list of values", path, v.Line, k.Value)
		}
	}
	return nil
}

func readCaps(path string, n *yaml.Node, caps map[string]bool) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: capabilities must be a mapping of name: true|false", path, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !rule.Capabilities[k.Value] {
			return fmt.Errorf("%s:%d: capabilities.%s: unknown capability", path, k.Line, k.Value)
		}
		var b bool
		if err := v.Decode(&b); err != nil {
			return fmt.Errorf("%s:%d: capabilities.%s: must be true or false", path, v.Line, k.Value)
		}
		caps[k.Value] = b
	}
	return nil
}

// Vars returns the effective variables for a host in the given groups.
// Later groups win over earlier ones.
func (c *Config) Vars(host string, groups []string) map[string]string {
	out := map[string]string{}
	tiers := []map[string]string{c.Corpus, c.Site, c.ConfD}
	for _, g := range groups {
		tiers = append(tiers, c.Groups[g])
	}
	tiers = append(tiers, c.Hosts[host], c.CLI)
	for _, t := range tiers {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}

// CapabilityOverrides returns the forced capabilities for a host.
func (c *Config) CapabilityOverrides(host string, groups []string) map[string]bool {
	out := map[string]bool{}
	tiers := []map[string]bool{c.CapForce}
	for _, g := range groups {
		tiers = append(tiers, c.GroupCaps[g])
	}
	tiers = append(tiers, c.HostCaps[host], c.CLICapsSet)
	for _, t := range tiers {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}
