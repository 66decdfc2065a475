package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// contents are a bundle's members as read from its tar.
type contents struct {
	manifest []byte
	sig      []byte // nil when unsigned
	files    map[string][]byte
}

// parse reads a bundle tar, enforcing the member order (manifest.json,
// then optionally manifest.sig, then rules/...), the size limits, and safe
// unique paths. It does not check signatures or digests.
func parse(data []byte) (*contents, error) {
	tr := tar.NewReader(bytes.NewReader(data))
	c := &contents{files: map[string][]byte{}}
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tar member %d: %v: %w", n+1, err, ErrMalformed)
		}
		if n >= MaxMembers {
			return nil, fmt.Errorf("more than %d members: %w", MaxMembers, ErrMalformed)
		}
		name := hdr.Name
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("member %q is not a regular file (type %q): %w", name, hdr.Typeflag, ErrMalformed)
		}
		limit := int64(MaxFileSize)
		switch {
		case n == 0 && name != manifestName:
			return nil, fmt.Errorf("first member is %q, not %s: %w", name, manifestName, ErrMalformed)
		case n == 0:
			limit = MaxManifestSize
		case name == sigName && n != 1:
			return nil, fmt.Errorf("%s is member %d, not the second: %w", sigName, n+1, ErrMalformed)
		case name == sigName:
			limit = 1024
		case !strings.HasPrefix(name, rulesPrefix) || !validPath(strings.TrimPrefix(name, rulesPrefix)):
			return nil, fmt.Errorf("member %q is not a safe path under %s: %w", name, rulesPrefix, ErrMalformed)
		}
		if hdr.Size < 0 || hdr.Size > limit {
			return nil, fmt.Errorf("member %q is %d bytes, over the %d byte limit: %w", name, hdr.Size, limit, ErrMalformed)
		}
		if total += hdr.Size; total > MaxTotalSize {
			return nil, fmt.Errorf("content over the %d byte limit: %w", MaxTotalSize, ErrMalformed)
		}
		body := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, body); err != nil {
			return nil, fmt.Errorf("member %q: %v: %w", name, err, ErrMalformed)
		}
		switch {
		case n == 0:
			c.manifest = body
		case name == sigName:
			c.sig = body
		default:
			rel := strings.TrimPrefix(name, rulesPrefix)
			if _, dup := c.files[rel]; dup {
				return nil, fmt.Errorf("member %q appears twice: %w", name, ErrMalformed)
			}
			c.files[rel] = body
		}
	}
	if c.manifest == nil {
		return nil, fmt.Errorf("no %s: %w", manifestName, ErrMalformed)
	}
	return c, nil
}

// write writes a bundle tar deterministically: fixed member order, sorted
// corpus paths, and headers without times, owners or varying modes.
func write(w io.Writer, manifest, sig []byte, files map[string][]byte) error {
	tw := tar.NewWriter(w)
	if err := writeMember(tw, manifestName, manifest); err != nil {
		return err
	}
	if sig != nil {
		if err := writeMember(tw, sigName, sig); err != nil {
			return err
		}
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if err := writeMember(tw, rulesPrefix+p, files[p]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

// writeMember writes one regular file with a normalised header.
func writeMember(tw *tar.Writer, name string, data []byte) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		Size:     int64(len(data)),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write bundle member %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("write bundle member %s: %w", name, err)
	}
	return nil
}

// collect reads the corpus files of rulesDir: every *.yml and *.yaml (rules,
// frameworks/, defaults.yml, defaults.d/), skipping hidden files and
// directories and the proof cases under tests/ and testdata/.
func collect(rulesDir string) (map[string][]byte, error) {
	st, err := os.Stat(rulesDir)
	if err != nil {
		return nil, fmt.Errorf("build bundle: rules: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("build bundle: rules %s is not a directory", rulesDir)
	}
	files := map[string][]byte{}
	var total int64
	err = filepath.WalkDir(rulesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != rulesDir && (strings.HasPrefix(name, ".") || name == "tests" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".yaml")) {
			return nil
		}
		fi, err := os.Stat(p) // follows a symlinked file
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		if fi.Size() > MaxFileSize {
			return fmt.Errorf("%s is %d bytes, over the %d byte limit", p, fi.Size(), MaxFileSize)
		}
		if total += fi.Size(); total > MaxTotalSize || len(files) >= MaxMembers-2 {
			return fmt.Errorf("corpus is over the bundle limits (%d bytes, %d files)", MaxTotalSize, MaxMembers-2)
		}
		rel, err := filepath.Rel(rulesDir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("build bundle: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("build bundle: no *.yml or *.yaml files in %s", rulesDir)
	}
	return files, nil
}
