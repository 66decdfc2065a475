package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfleet/vigil/agent/internal/bundletest"
	"github.com/vigilfleet/vigil/agent/internal/servertest"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-agent-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "vigil-agent")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("build vigil-agent: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestBinaryEnrollRunSIGTERM drives the real binary: enrol, run, one
// local scan delivered, then SIGTERM ends it cleanly.
func TestBinaryEnrollRunSIGTERM(t *testing.T) {
	srv := servertest.Start(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	out, err := exec.Command(binary, "enroll", "--server", srv.Addr, "--token", srv.Token, "--ca-pin", srv.CA.Pin(),
		"--state-dir", stateDir, "--hostname", "bin-1").CombinedOutput()
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	_, priv, pub := bundletest.Keys(t)
	cfgFile := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfgFile, []byte("state_dir: "+stateDir+"\ntrusted_bundle_keys: ["+pub+"]\nheartbeat_interval: 1s\n"), 0o600)

	var logs bytes.Buffer
	cmd := exec.Command(binary, "run", "--config", cfgFile)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})
	digest := srv.Publish(bundletest.Signed(t, bundletest.Corpus(t, "ssh-permit"), "2026.11.9", priv))
	srv.Assign(&agentpb.Assignment{ScanId: 70, BundleDigest: digest, Target: &agentpb.Target{Kind: agentpb.Target_KIND_LOCAL}})
	srv.Wait(t, time.Minute, "the scan's end", func() bool {
		for _, b := range srv.Batches() {
			if b.GetScanId() == 70 && b.GetEnd() != nil {
				return true
			}
		}
		return false
	})
	if hb := srv.Heartbeats(); len(hb) == 0 || hb[0].GetHostname() != "bin-1" {
		t.Errorf("heartbeat hostname: %v", hb)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30 s after SIGTERM\n%s", logs.String())
	}
	st, err := exec.Command(binary, "status", "--state-dir", stateDir).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "last scan:    70 on bin-1") || !strings.Contains(string(st), "daemon:       disconnected") {
		t.Errorf("status after stop: %v\n%s", err, st)
	}
	if out, err := exec.Command(binary, "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "vigil-agent ") {
		t.Errorf("--version: %v %q", err, out)
	}
}
