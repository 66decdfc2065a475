package sshtarget

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/vigilfleet/vigil/engine/target/shellbatch"
)

// invocation is how one batch is started on the host: the command line the
// SSH session executes, and what goes on its stdin before the script.
type invocation struct {
	command string
	prefix  []byte
}

// batchInvocation builds the command that runs a script read from stdin.
//
//   - Without sudo: sh -s.
//   - Sudo without password: sudo -n never prompts, so a sudo that wants a
//     password fails at once with "a password is required".
//   - Sudo with password: sudo -S reads the password as the first stdin
//     line (one byte at a time, so the rest stays for the shell); -k makes
//     sudo ask every time instead of sometimes using a cached credential;
//     an empty -p prompt keeps stderr quiet. If sudo does not ask after all
//     (NOPASSWD), the password line would reach the shell and be run as a
//     command. So the shell sudo starts first discards lines up to a
//     random sentinel, then execs the real sh -s: the password is consumed
//     either by sudo or by that loop, never executed. Dial has checked the
//     password already; should it be wrong by the time a batch runs, sudo
//     makes its further attempts on the sentinel and the script's first
//     line (never running them) and the batch fails with
//     ErrSudoPasswordWrong.
//
// The sudo forms run under env LC_ALL=C so sudo's complaints are in
// English for classifySudo, whatever locale the login sets. Everything is
// one line of plain words and single quotes, which every login shell
// (sh, bash, zsh, csh, fish) parses the same way.
func batchInvocation(o Options, sentinel string) invocation {
	switch {
	case !o.Sudo:
		return invocation{command: "sh -s"}
	case o.SudoPassword == "":
		return invocation{command: "env LC_ALL=C sudo -n sh -s"}
	}
	skip := `while IFS= read -r l; do [ "$l" = ` + sentinel + ` ] && break; done; exec sh -s`
	return invocation{
		command: "env LC_ALL=C sudo -S -k -p '' sh -c " + shellbatch.Quote(skip),
		prefix:  []byte(o.SudoPassword + "\n" + sentinel + "\n"),
	}
}

// probeInvocation builds the command Dial runs to check sudo: the same
// sudo flags running `true`. With a password, stdin holds the password and
// then ends, so a wrong one costs exactly one failed attempt (sudo's next
// read sees end of input) and cannot trip an account lockout policy such
// as pam_faillock.
func probeInvocation(o Options) invocation {
	if o.SudoPassword == "" {
		return invocation{command: "env LC_ALL=C sudo -n true"}
	}
	return invocation{
		command: "env LC_ALL=C sudo -S -k -p '' true",
		prefix:  []byte(o.SudoPassword + "\n"),
	}
}

// newSentinel draws the line that ends the password skip loop. It is
// random so that no password can equal it.
func newSentinel() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "vigil-sudo-" + hex.EncodeToString(b[:]), nil
}
