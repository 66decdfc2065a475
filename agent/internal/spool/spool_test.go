package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilfleet/vigil/shared/agentpb"
)

func batch(scan, seq int64, n int) *agentpb.ResultBatch {
	b := &agentpb.ResultBatch{ScanId: scan, Seq: seq}
	for i := 0; i < n; i++ {
		b.Results = append(b.Results, &agentpb.Result{RuleId: "r", Status: "pass", Detail: strings.Repeat("x", 100)})
	}
	return b
}

func TestDurableAcrossReopenInOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(batch(7, 1, 3), batch(7, 2, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(batch(3, 1, 2)); err != nil {
		t.Fatal(err)
	}
	// A crash mid-write leaves a temporary file; reopening must ignore and
	// remove it, keep every complete batch, and continue the numbering.
	if err := os.WriteFile(filepath.Join(dir, ".00000000000000000003-9-1.batch.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".00000000000000000003-9-1.batch.tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left after reopen: %v", err)
	}
	n, bytes := s2.Stats()
	if n != 3 || bytes <= 0 {
		t.Fatalf("stats after reopen = %d batches %d bytes", n, bytes)
	}
	if err := s2.Put(batch(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	entries, err := s2.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		b, err := s2.Read(e)
		if err != nil {
			t.Fatal(err)
		}
		if b.GetScanId() != e.ScanID || b.GetSeq() != e.Seq {
			t.Errorf("%s holds scan %d seq %d", e.Name, b.GetScanId(), b.GetSeq())
		}
		got = append(got, strings.Join([]string{itoa(e.ScanID), itoa(e.Seq)}, "/"))
	}
	if want := "7/1 7/2 3/1 1/1"; strings.Join(got, " ") != want {
		t.Errorf("replay order = %v, want %s", got, want)
	}
	// Only an explicit Delete (the ack) removes a batch.
	if err := s2.Delete(entries[0]); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s3.Stats(); n != 3 {
		t.Errorf("after one delete and reopen: %d batches, want 3", n)
	}
	left, _ := s3.List()
	if left[0].ScanID != 7 || left[0].Seq != 2 {
		t.Errorf("first left = %+v", left[0])
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCapRefusesWholePut(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(batch(1, 1, 5)); err != nil {
		t.Fatal(err)
	}
	n0, b0 := s.Stats()
	err = s.Put(batch(2, 1, 5), batch(2, 2, 10))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Put over the cap: %v, want ErrFull", err)
	}
	if !strings.Contains(err.Error(), "cap of 2000") {
		t.Errorf("error does not say the cap: %v", err)
	}
	if n, b := s.Stats(); n != n0 || b != b0 {
		t.Errorf("refused Put changed the spool: %d/%d -> %d/%d", n0, b0, n, b)
	}
	entries, _ := s.List()
	if len(entries) != 1 {
		t.Errorf("files after refused Put: %d", len(entries))
	}
}

func TestQuarantine(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(batch(1, 1, 1), batch(1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	entries, _ := s.List()
	if err := os.WriteFile(filepath.Join(dir, entries[0].Name), []byte("\xff\xff\xff"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(entries[0]); err == nil {
		t.Fatal("garbage batch read without error")
	}
	if err := s.Quarantine(entries[0]); err != nil {
		t.Fatal(err)
	}
	left, _ := s.List()
	if len(left) != 1 || left[0].Seq != 2 {
		t.Errorf("after quarantine: %v", left)
	}
	if n, _ := s.Stats(); n != 1 {
		t.Errorf("count = %d", n)
	}
	if _, err := os.Stat(filepath.Join(dir, entries[0].Name+".corrupt")); err != nil {
		t.Errorf("quarantined file not kept: %v", err)
	}
}

func TestFullUntilSomethingDrains(t *testing.T) {
	s, err := Open(t.TempDir(), 2000)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(batch(1, 1, 5)); err != nil {
		t.Fatal(err)
	}
	if s.Full() {
		t.Fatal("Full before any refusal")
	}
	if err := s.Put(batch(2, 1, 20)); !errors.Is(err, ErrFull) {
		t.Fatalf("Put over the cap: %v", err)
	}
	if !s.Full() {
		t.Fatal("not Full after a refused Put")
	}
	// A small write that fits does not undo the loss.
	if err := s.Put(batch(3, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if !s.Full() {
		t.Error("Full cleared by a write that fit; only draining clears it")
	}
	entries, _ := s.List()
	if err := s.Delete(entries[0]); err != nil {
		t.Fatal(err)
	}
	if s.Full() {
		t.Error("still Full after an acknowledged batch left")
	}
}
