// Package testtarget starts real Debian 12 SSH targets on loopback for
// integration tests of the engine, the agent and the server.
//
// Each target is a real OpenSSH server running on its own address
// 127.0.0.N (N in 2..250, port DefaultPort) inside its own mount, PID, UTS
// and IPC namespaces, chrooted into an overlayfs whose lower layer is one
// cached Debian 12 root filesystem and whose upper layer belongs to the test.
// Tests vary a target by writing files into that upper layer before sshd
// starts (Options.Files, Options.Remove), or later through Host.Exec followed
// by Host.Restart. Nothing ever listens or connects outside 127.0.0.0/8, and
// no network devices are created.
//
// The root filesystem is built once per machine with debootstrap (about a
// minute) and cached in $VIGIL_TESTROOT_DIR, by default
// /var/cache/vigil-test/bookworm; see EnsureRoot. Address claims are lock
// files in /tmp/vigil-testtarget, so any number of test processes can start
// targets at the same time.
//
// Prerequisites: running as root (for mounts, namespaces and chroot), the
// debootstrap program (`apt-get install debootstrap`) and a reachable Debian
// mirror for the first build. The repository's .ci/run provides all of them.
// Without them Start and Require skip the test instead of failing it.
//
// Users inside every target:
//
//   - root: key login with Host.RootSigner / Host.RootKeyFile.
//   - vigil (User): key login with Host.UserSigner / Host.UserKeyFile, sudo
//     without a password.
//   - vigilpw (PasswordUser): password login with Password, sudo asking for
//     that password.
package testtarget
