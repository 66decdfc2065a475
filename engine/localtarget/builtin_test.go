package localtarget

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilfleet/vigil/engine/target"
)

// TestModuleBuiltin reads an image's modules.builtin: a driver compiled
// into the kernel is reported as such, a loadable one as available.
func TestModuleBuiltin(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules/6.1.0-test")
	if err := os.MkdirAll(filepath.Join(dir, "kernel/fs/udf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/cramfs/cramfs.ko\nkernel/drivers/usb/storage/usb-storage.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kernel/fs/udf/udf.ko.xz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tg, err := NewRootDir(root)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []target.Request{{Op: target.OpModule, Path: "cramfs"}, {Op: target.OpModule, Path: "usb_storage"}, {Op: target.OpModule, Path: "udf"}}
	resps, err := tg.Gather(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ builtin, available bool }{{true, false}, {true, false}, {false, true}}
	for i, r := range resps {
		if r.Err != nil || r.Builtin != want[i].builtin || r.Available != want[i].available {
			t.Errorf("%s: builtin %v available %v err %v, want %+v", reqs[i].Path, r.Builtin, r.Available, r.Err, want[i])
		}
	}
}
