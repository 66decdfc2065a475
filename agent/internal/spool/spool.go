// Package spool is the agent's on-disk queue of result batches: every batch
// is written and fsynced before it is sent, and deleted only once the
// server has acknowledged it, so server restarts, network cuts and agent
// crashes lose nothing. One file per batch; names order the replay.
package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/vigilfleet/vigil/agent/internal/state"
	"github.com/vigilfleet/vigil/shared/agentpb"
)

// ErrFull is returned (wrapped, with the sizes) when writing would take
// the spool over its size cap; nothing of the refused write is kept.
var ErrFull = errors.New("spool is full")

const suffix = ".batch"

// Entry is one spooled batch.
type Entry struct {
	Name   string // file name, which orders entries
	ScanID int64
	Seq    int64
	Size   int64
}

// Spool is a directory of batch files. Safe for concurrent use.
type Spool struct {
	dir      string
	maxBytes int64

	mu    sync.Mutex
	next  uint64
	bytes int64
	count int
	full  bool // a Put was refused for space and nothing has left since
}

// Open opens (creating) the spool in dir, capped at maxBytes, and removes
// temporary files a crash left behind.
func Open(dir string, maxBytes int64) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		e, ok := parseName(name)
		if !ok {
			continue
		}
		if info, err := de.Info(); err == nil {
			s.bytes += info.Size()
			s.count++
		}
		if n, _ := strconv.ParseUint(strings.SplitN(e.Name, "-", 2)[0], 10, 64); n >= s.next {
			s.next = n + 1
		}
	}
	return s, nil
}

func fileName(n uint64, scanID, seq int64) string {
	return fmt.Sprintf("%020d-%d-%d%s", n, scanID, seq, suffix)
}

func parseName(name string) (Entry, bool) {
	if !strings.HasSuffix(name, suffix) {
		return Entry{}, false
	}
	parts := strings.Split(strings.TrimSuffix(name, suffix), "-")
	if len(parts) != 3 {
		return Entry{}, false
	}
	scan, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return Entry{}, false
	}
	return Entry{Name: name, ScanID: scan, Seq: seq}, true
}

// Put durably writes batches, in order, as one unit: if all of them do not
// fit under the cap, none is written and the error wraps ErrFull.
func (s *Spool) Put(batches ...*agentpb.ResultBatch) error {
	encoded := make([][]byte, len(batches))
	var total int64
	for i, b := range batches {
		data, err := proto.Marshal(b)
		if err != nil {
			return fmt.Errorf("spool: encode scan %d batch %d: %w", b.GetScanId(), b.GetSeq(), err)
		}
		encoded[i] = data
		total += int64(len(data))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes+total > s.maxBytes {
		s.full = true
		return fmt.Errorf("spool %s holds %d bytes in %d batches, %d more would pass the cap of %d: %w",
			s.dir, s.bytes, s.count, total, s.maxBytes, ErrFull)
	}
	for i, b := range batches {
		name := fileName(s.next, b.GetScanId(), b.GetSeq())
		if err := writeFile(s.dir, name, encoded[i]); err != nil {
			return err
		}
		s.next++
		s.bytes += int64(len(encoded[i]))
		s.count++
	}
	return state.SyncDir(s.dir)
}

// writeFile writes one batch: temporary file, fsync, rename. The caller
// syncs the directory once for the whole Put.
func writeFile(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: write %s: %w", name, err)
	}
	return nil
}

// List returns the spooled batches in the order they were written.
func (s *Spool) List() ([]Entry, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", s.dir, err)
	}
	var out []Entry
	for _, de := range des {
		e, ok := parseName(de.Name())
		if !ok {
			continue
		}
		if info, err := de.Info(); err == nil {
			e.Size = info.Size()
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Read loads one spooled batch.
func (s *Spool) Read(e Entry) (*agentpb.ResultBatch, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, e.Name))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var b agentpb.ResultBatch
	if err := proto.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("spool: %s: %w", e.Name, err)
	}
	return &b, nil
}

// Delete removes a batch once the server has acknowledged it.
func (s *Spool) Delete(e Entry) error {
	p := filepath.Join(s.dir, e.Name)
	info, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("spool: delete %s: %w", e.Name, err)
	}
	s.mu.Lock()
	s.bytes -= info.Size()
	s.count--
	s.full = false
	s.mu.Unlock()
	return state.SyncDir(s.dir)
}

// Quarantine moves an unreadable batch aside (name.corrupt) so it no
// longer blocks the queue, keeping it for an operator to inspect.
func (s *Spool) Quarantine(e Entry) error {
	p := filepath.Join(s.dir, e.Name)
	info, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(p, p+".corrupt"); err != nil {
		return fmt.Errorf("spool: quarantine %s: %w", e.Name, err)
	}
	s.mu.Lock()
	s.bytes -= info.Size()
	s.count--
	s.full = false
	s.mu.Unlock()
	return state.SyncDir(s.dir)
}

// Stats returns how many batches and bytes the spool holds.
func (s *Spool) Stats() (batches int64, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.count), s.bytes
}

// Full reports whether the spool refused a write for space and nothing
// has been acknowledged and deleted since (a later smaller write that fit
// does not count): results were lost and the spool is not draining, which
// makes the agent not ready.
func (s *Spool) Full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full
}
