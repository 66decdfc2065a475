package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfleet/vigil/server/internal/app"
)

// tokenCreate prints a new join token, its CA pin and the enrol command
// ("token create --ttl 1h --uses 1 [--labels k=v,...]").
func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("token create", stderr)
	ttl := f.fs.Duration("ttl", time.Hour, "how long the token may be used")
	uses := f.fs.Int("uses", 1, "how many agents may enrol with it")
	labels := f.fs.String("labels", "", "labels given to the agents enrolled with it: k=v,k2=v2")
	asJSON := f.fs.Bool("json", false, `print {"token","ca_pin","expires_at",...} as JSON`)
	cfg, err := f.load(args)
	if err != nil {
		return err
	}
	lm, err := parseLabels(*labels)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := app.CreateJoinToken(ctx, cfg, st, *ttl, *uses, lm, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(t)
	}
	fmt.Fprintf(stdout, "token:      %s\nca_pin:     %s\nexpires_at: %s\nuses:       %d\n\nEnrol an agent with:\n  %s\n",
		t.Token, t.CAPin, t.ExpiresAt.Format(time.RFC3339), t.Uses, t.Enroll)
	return nil
}

// parseLabels reads "k=v,k2=v2".
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

// agentRevoke revokes an agent by id ("agent revoke ID").
func agentRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("agent revoke", stderr)
	arg, rest, err := positional("agent revoke", "ID", args)
	if err != nil {
		return err
	}
	cfg, err := f.load(rest)
	if err != nil {
		return err
	}
	if arg == "" {
		return flag.ErrHelp
	}
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return errors.New("agent revoke: ID must be a positive integer (see GET /api/v1/agents)")
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := app.RevokeAgent(ctx, st, id, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked agent %d (%s) at %s; its next call is refused\n", a.ID, a.Name, a.RevokedAt.Format(time.RFC3339))
	return nil
}
