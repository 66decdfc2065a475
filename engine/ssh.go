package engine

import (
	"context"

	"github.com/vigilfleet/vigil/engine/sshtarget"
)

// SSHOptions configure an SSH session: address, user, credentials (key
// files, password, ssh-agent), known_hosts verification and sudo.
type SSHOptions = sshtarget.Options

// NewSSHSession connects to a host over SSH. The host key is verified
// against known_hosts and a mismatch is refused; the error names the host.
func NewSSHSession(ctx context.Context, opts SSHOptions) (*Session, error) {
	t, err := sshtarget.Dial(ctx, opts)
	if err != nil {
		return nil, err
	}
	return NewSession(t), nil
}
