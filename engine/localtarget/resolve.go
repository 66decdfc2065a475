package localtarget

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks bounds symlink hops while resolving one path, as the kernel does.
const maxLinks = 40

// resolveIn maps p (absolute, as seen inside the image) to a host path under
// root, following symlinks the way the image's own kernel would: an absolute
// link target starts again at root, and ".." never climbs above root. The
// last component is resolved too, so stat and read see the link's target.
// A missing component ends resolution there: the caller sees "not exist".
// The path is not cleaned lexically first: as in the kernel, ".." after a
// symlink climbs from the link's target, not from the link.
func resolveIn(root, p string) (string, error) {
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	resolved := "/"
	hops := 0
	for len(rest) > 0 {
		comp := rest[0]
		rest = rest[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, comp)
		host := filepath.Join(root, next)
		st, err := os.Lstat(host)
		if errors.Is(err, fs.ErrNotExist) {
			// Nothing below a missing component exists, even where a later
			// ".." would lexically lead back to an existing file.
			return host, nil
		}
		if err != nil {
			return host, nil // let the caller's open report the error
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		hops++
		if hops > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		link, err := os.Readlink(host)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		if strings.HasPrefix(link, "/") {
			resolved = "/"
		}
		rest = append(strings.Split(strings.TrimPrefix(link, "/"), "/"), rest...)
	}
	return filepath.Join(root, resolved), nil
}
