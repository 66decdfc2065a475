package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxInventorySize bounds an inventory file; ten thousand hosts fit in a
// few megabytes.
const maxInventorySize = 16 << 20

// inventory is a parsed inventory file:
//
//	defaults:
//	  user: vigil
//	  port: 22
//	  key: ~/.ssh/vigil_ed25519         # or a list of files
//	  password_env: VIGIL_SSH_PASSWORD  # the variable's name, never the password
//	  sudo: true
//	  sudo_password_env: VIGIL_SUDO_PASSWORD
//	  known_hosts: ./known_hosts
//	hosts:
//	  - name: web1
//	    address: 192.0.2.10
//	    port: 2222
//	    groups: [web, prod]
//
// A host takes user, port, key, password_env, sudo and sudo_password_env
// too. Relative key and known_hosts paths are relative to the inventory's
// directory. Unknown keys are errors naming file and line.
type inventory struct {
	Defaults hostEntry
	Hosts    []hostEntry
}

var (
	defaultKeys = keySet("user", "port", "key", "password_env", "sudo", "sudo_password_env", "known_hosts")
	hostKeys    = keySet("name", "address", "port", "user", "key", "password_env", "sudo", "sudo_password_env", "groups")
)

func keySet(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// loadInventory reads and checks an inventory file, reporting every problem
// at once, each as file:line: message.
func loadInventory(path string) (*inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInventorySize+1))
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	if len(data) > maxInventorySize {
		return nil, fmt.Errorf("inventory %s is larger than %d bytes", path, maxInventorySize)
	}
	return parseInventory(path, data)
}

// parseInventory parses inventory text; path names it in errors and
// anchors relative paths.
func parseInventory(path string, data []byte) (*inventory, error) {
	p := &invParser{file: path, dir: filepath.Dir(path)}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: inventory is empty", path)
		}
		return nil, fmt.Errorf("%s: invalid YAML: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	inv := &inventory{}
	top := p.mapping(doc.Content[0], "", keySet("defaults", "hosts"))
	if v := top["defaults"]; v != nil {
		inv.Defaults = p.entry(v, "defaults", defaultKeys)
	}
	if v := top["hosts"]; v != nil {
		inv.Hosts = p.hosts(v)
	} else if top != nil {
		p.errf(doc.Content[0].Line, "inventory lists no hosts (key `hosts`)")
	}
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b invError) int { return a.line - b.line })
		msgs := make([]string, len(p.errs))
		for i, e := range p.errs {
			msgs[i] = e.msg
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	return inv, nil
}

// invParser collects every problem of one inventory file.
type invParser struct {
	file, dir string
	errs      []invError
}

// invError is one problem, reported in line order.
type invError struct {
	line int
	msg  string
}

func (p *invParser) errf(line int, format string, args ...any) {
	p.errs = append(p.errs, invError{line, fmt.Sprintf("%s:%d: ", p.file, line) + fmt.Sprintf(format, args...)})
}

// mapping returns n's entries by key, reporting a non-mapping, unknown keys
// and duplicates.
func (p *invParser) mapping(n *yaml.Node, field string, allowed map[string]bool) map[string]*yaml.Node {
	where := field
	if where == "" {
		where = "the inventory"
	}
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, "%s must be a mapping", where)
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !allowed[k.Value]:
			p.errf(k.Line, "unknown key %q in %s (allowed: %s)", k.Value, where, sortedKeys(allowed))
		case out[k.Value] != nil:
			p.errf(k.Line, "duplicate key %q in %s", k.Value, where)
		default:
			out[k.Value] = v
		}
	}
	return out
}

// hosts parses the hosts list, defaulting a name to the address and the
// address to the name, and rejecting duplicate names.
func (p *invParser) hosts(n *yaml.Node) []hostEntry {
	if n.Kind != yaml.SequenceNode {
		p.errf(n.Line, "hosts must be a list")
		return nil
	}
	seen := map[string]int{}
	var out []hostEntry
	for i, c := range n.Content {
		field := fmt.Sprintf("hosts[%d]", i)
		h := p.entry(c, field, hostKeys)
		h.Line = c.Line
		if h.Name == "" {
			h.Name = h.Address
		}
		if h.Address == "" {
			h.Address = h.Name
		}
		switch {
		case c.Kind != yaml.MappingNode:
			continue
		case h.Name == "":
			p.errf(c.Line, "%s needs a name or an address", field)
			continue
		case seen[h.Name] != 0:
			p.errf(c.Line, "%s: host %q is already listed at line %d", field, h.Name, seen[h.Name])
			continue
		}
		seen[h.Name] = c.Line
		out = append(out, h)
	}
	return out
}

// entry parses one host or the defaults.
func (p *invParser) entry(n *yaml.Node, field string, allowed map[string]bool) hostEntry {
	var h hostEntry
	m := p.mapping(n, field, allowed)
	h.Name = p.str(m["name"], field+".name")
	h.Address = p.str(m["address"], field+".address")
	if h.Address != "" {
		if addr, port, err := splitAddr(h.Address); err != nil || port != 0 {
			p.errf(m["address"].Line, "%s.address %q must be a host name or IP address (put the port in `port`)", field, h.Address)
		} else {
			h.Address = addr
		}
	}
	if v := m["port"]; v != nil {
		port, err := parsePort(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil {
			p.errf(v.Line, "%s.port must be a number from 1 to 65535", field)
		}
		h.Port = port
	}
	h.User = p.str(m["user"], field+".user")
	h.PasswordEnv = p.str(m["password_env"], field+".password_env")
	h.SudoPasswordEnv = p.str(m["sudo_password_env"], field+".sudo_password_env")
	h.KnownHosts = p.path(p.str(m["known_hosts"], field+".known_hosts"))
	for _, k := range p.strList(m["key"], field+".key", true) {
		h.Keys = append(h.Keys, p.path(k))
	}
	h.Groups = p.strList(m["groups"], field+".groups", false)
	if v := m["sudo"]; v != nil {
		var b bool
		if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
			p.errf(v.Line, "%s.sudo must be true or false", field)
		}
		h.Sudo = &b
	}
	return h
}

// str reads a scalar; nil reads as "".
func (p *invParser) str(n *yaml.Node, field string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errf(n.Line, "%s must be a single value", field)
		return ""
	}
	if strings.TrimSpace(n.Value) == "" {
		p.errf(n.Line, "%s must not be empty", field)
	}
	return strings.TrimSpace(n.Value)
}

// strList reads a list of scalars, or with scalarOK one scalar.
func (p *invParser) strList(n *yaml.Node, field string, scalarOK bool) []string {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && scalarOK {
		if s := p.str(n, field); s != "" {
			return []string{s}
		}
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errf(n.Line, "%s must be a list", field)
		return nil
	}
	var out []string
	for i, c := range n.Content {
		if s := p.str(c, fmt.Sprintf("%s[%d]", field, i)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// path makes a path from the inventory absolute against its directory.
func (p *invParser) path(s string) string {
	if s == "" {
		return ""
	}
	s = expandHome(s)
	if !filepath.IsAbs(s) {
		s = filepath.Join(p.dir, s)
	}
	return s
}

func sortedKeys(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}
