package testtarget

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// prepare fills the Host's directory before the first start: keys, the
// known_hosts file, and the upper layer (harness files, then the caller's
// files and whiteouts, so the caller wins).
func (h *Host) prepare(opts Options) error {
	if err := h.setDirs(); err != nil {
		return fmt.Errorf("create dirs: %w", err)
	}
	if err := h.makeKeys(); err != nil {
		return err
	}
	for _, f := range h.harnessFiles(opts.SSHDConfigExtra) {
		if err := h.writeFile(f.path, f.file); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	if err := h.chownLike("/home/"+User+"/.ssh/authorized_keys", "/home/"+User+"/.ssh"); err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(opts.Files)) {
		if err := h.writeFile(p, opts.Files[p]); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	for _, p := range opts.Remove {
		if err := h.whiteout(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// makeKeys generates the host key and the two client keys, and writes the
// client key files and known_hosts.
func (h *Host) makeKeys() error {
	var err error
	if h.hostKey, h.hostKeyPEM, err = newKey("testtarget host key"); err != nil {
		return err
	}
	h.rootKeyFile = filepath.Join(h.dir, "id_ed25519_root")
	if h.rootSigner, err = newKeyFile(h.rootKeyFile); err != nil {
		return err
	}
	h.userKeyFile = filepath.Join(h.dir, "id_ed25519_"+User)
	if h.userSigner, err = newKeyFile(h.userKeyFile); err != nil {
		return err
	}
	h.knownHosts = filepath.Join(h.dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(h.Addr())}, h.hostKey.PublicKey())
	if err := os.WriteFile(h.knownHosts, []byte(line+"\n"), 0o644); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	return nil
}

// newKey generates an ed25519 key and returns it with its OpenSSH PEM form.
func newKey(comment string) (ssh.Signer, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("signer: %w", err)
	}
	return signer, pem.EncodeToMemory(block), nil
}

// newKeyFile generates a client key and writes its private key file.
func newKeyFile(path string) (ssh.Signer, error) {
	signer, pemBytes, err := newKey(filepath.Base(path))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pemBytes, keyFileMode); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	return signer, nil
}

// chownLike gives target path p the owner and group that dir has in the
// root: sshd only reads a user's authorized_keys if the user owns it.
func (h *Host) chownLike(p, dir string) error {
	st, err := os.Stat(filepath.Join(h.root, dir))
	if err != nil {
		return fmt.Errorf("stat %s in root: %w", dir, err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if err := os.Lchown(filepath.Join(h.upper, p), int(sys.Uid), int(sys.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// placed is one harness file for the upper layer.
type placed struct {
	path string
	file File
}

// harnessFiles are the files every target gets: its host key, the client
// keys' authorized_keys, sshd_config, and host name files (sudo wants its
// host name resolvable).
func (h *Host) harnessFiles(extra string) []placed {
	hostPub := ssh.MarshalAuthorizedKey(h.hostKey.PublicKey())
	return []placed{
		{"/etc/ssh/ssh_host_ed25519_key", File{h.hostKeyPEM, keyFileMode}},
		{"/etc/ssh/ssh_host_ed25519_key.pub", File{hostPub, 0o644}},
		{"/root/.ssh/authorized_keys", File{ssh.MarshalAuthorizedKey(h.rootSigner.PublicKey()), keyFileMode}},
		{"/home/" + User + "/.ssh/authorized_keys", File{ssh.MarshalAuthorizedKey(h.userSigner.PublicKey()), keyFileMode}},
		{"/etc/ssh/sshd_config", File{[]byte(h.sshdConfig(extra)), 0o644}},
		{"/etc/hostname", File{[]byte(h.hostname + "\n"), 0o644}},
		{"/etc/hosts", File{[]byte("127.0.0.1\tlocalhost\n" + h.ip + "\t" + h.hostname + "\n"), 0o644}},
	}
}

// sshdConfig is the target's main sshd_config. The Include comes first as
// on Debian: sshd keeps the first value it reads, so a test's file in
// sshd_config.d overrides everything below.
func (h *Host) sshdConfig(extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by testtarget for %s.
Include /etc/ssh/sshd_config.d/*.conf
ListenAddress %s
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`, h.Addr(), h.Addr())
	if extra != "" {
		b.WriteString(extra)
		if !strings.HasSuffix(extra, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// writeFile places f at target path p in the upper layer.
func (h *Host) writeFile(p string, f File) error {
	rel, err := h.resolve(p)
	if err != nil {
		return err
	}
	dst, err := h.mkParents(rel)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	uid, gid, mode := h.lowerOwner(rel, f.Mode)
	switch {
	case f.Mode&os.ModeSymlink != 0:
		err = os.Symlink(string(f.Data), dst)
	case f.Mode.IsDir():
		err = os.Mkdir(dst, 0o700)
	default:
		err = os.WriteFile(dst, f.Data, 0o600)
	}
	if err != nil {
		return err
	}
	if err := os.Lchown(dst, uid, gid); err != nil {
		return err
	}
	if f.Mode&os.ModeSymlink != 0 {
		return nil
	}
	return os.Chmod(dst, mode)
}

// lowerOwner returns the owner and mode for an entry at rel. An entry the
// root already has keeps its owner and group, and its mode unless want
// carries permission bits; a new one belongs to root with want's bits or
// 0644 (0755 for a directory).
func (h *Host) lowerOwner(rel string, want os.FileMode) (uid, gid int, mode os.FileMode) {
	const bits = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky
	mode = want & bits
	st, err := os.Lstat(filepath.Join(h.root, rel))
	if err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
		if mode == 0 {
			mode = st.Mode() & bits
		}
		return uid, gid, mode
	}
	if mode == 0 {
		mode = 0o644
		if want.IsDir() {
			mode = 0o755
		}
	}
	return 0, 0, mode
}

// whiteout deletes target path p: overlayfs hides a lower entry behind a
// 0/0 character device of the same name in the upper layer.
func (h *Host) whiteout(p string) error {
	rel, err := h.resolve(p)
	if err != nil {
		return err
	}
	dst, err := h.mkParents(rel)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return syscall.Mknod(dst, syscall.S_IFCHR|0o000, 0)
}

// resolve turns target path p into a clean path relative to the target's
// "/" with every parent symlink followed as the target would see it
// (bookworm's /bin is a link to usr/bin: a file for /bin/x must land in
// usr/bin, not shadow the link with a directory). The last element is not
// followed: writing it replaces it.
func (h *Host) resolve(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	rest := splitPath(p)
	if len(rest) == 0 {
		return "", fmt.Errorf("path %q names the root", p)
	}
	cur := "/"
	for hops := 0; len(rest) > 1; {
		next := path.Join(cur, rest[0])
		rest = rest[1:]
		target, ok := h.readlink(next)
		if !ok {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("path %q: too many symlinks", p)
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(splitPath(target), rest...)
	}
	return strings.TrimPrefix(path.Join(cur, rest[0]), "/"), nil
}

// splitPath splits a slash path into its elements, dropping empty ones.
func splitPath(p string) []string {
	var out []string
	for e := range strings.SplitSeq(p, "/") {
		if e != "" && e != "." {
			out = append(out, e)
		}
	}
	return out
}

// readlink reads target path p as a symlink in the merged view: upper layer
// first, then the root.
func (h *Host) readlink(p string) (string, bool) {
	for _, base := range []string{h.upper, h.root} {
		full := filepath.Join(base, p)
		st, err := os.Lstat(full)
		if err != nil {
			continue
		}
		if st.Mode()&os.ModeSymlink == 0 {
			return "", false
		}
		t, err := os.Readlink(full)
		return t, err == nil
	}
	return "", false
}

// mkParents creates the parent directories of rel in the upper layer, each
// with the mode and owner the root gives it (so /root stays 0700 and a
// user's .ssh stays theirs: sshd's StrictModes checks them), and returns
// the upper-layer path of rel.
func (h *Host) mkParents(rel string) (string, error) {
	parts := splitPath(rel)
	cur := ""
	for _, part := range parts[:len(parts)-1] {
		cur = path.Join(cur, part)
		dst := filepath.Join(h.upper, cur)
		if st, err := os.Lstat(dst); err == nil {
			if !st.IsDir() {
				return "", fmt.Errorf("%s is not a directory in the overlay", cur)
			}
			continue
		}
		uid, gid, mode := h.lowerOwner(cur, os.ModeDir)
		if err := os.Mkdir(dst, 0o700); err != nil {
			return "", err
		}
		if err := os.Lchown(dst, uid, gid); err != nil {
			return "", err
		}
		if err := os.Chmod(dst, mode); err != nil {
			return "", err
		}
	}
	return filepath.Join(h.upper, rel), nil
}
