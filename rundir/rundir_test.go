package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockRefusesSecondHolder(t *testing.T) {
	d := New(filepath.Join(t.TempDir(), "out"))
	started := time.Date(2026, 11, 29, 1, 2, 3, 0, time.UTC)
	l, err := d.Lock(started)
	if err != nil {
		t.Fatal(err)
	}
	// A second open file description of the same lock file conflicts,
	// as another process's would (flock locks belong to the description).
	_, err = d.Lock(time.Now())
	want := fmt.Sprintf("%s/ is in use by pid %d (started 2026-11-29T01:02:03Z)", d.Root, os.Getpid())
	if !errors.Is(err, ErrInUse) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("second lock: %v, want %q", err, want)
	}
	l.Unlock()
	if b, _ := os.ReadFile(filepath.Join(d.Root, LockName)); len(b) != 0 {
		t.Errorf("lock file holds %q after Unlock, want it empty", b)
	}
	l2, err := d.Lock(time.Now())
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
}

func TestReplaceIsOneRename(t *testing.T) {
	parent := t.TempDir()
	d := New(filepath.Join(parent, "out"))
	l, err := d.Lock(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(d.Checkpoints(), 0o755)
	os.WriteFile(filepath.Join(d.Checkpoints(), "ckpt-75.index"), []byte("old"), 0o644)
	nl, err := d.Replace(l, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Unlock()
	entries, _ := os.ReadDir(d.Root)
	if len(entries) != 1 || entries[0].Name() != LockName {
		t.Errorf("replaced dir holds %v, want only %s", entries, LockName)
	}
	if left, _ := os.ReadDir(parent); len(left) != 1 {
		t.Errorf("parent holds %v after Replace, want only out", left)
	}
	if _, err := d.Lock(time.Now()); !errors.Is(err, ErrInUse) {
		t.Errorf("the new directory is not locked: %v", err)
	}
}

func TestRemoveStaleTemps(t *testing.T) {
	parent := t.TempDir()
	d := New(filepath.Join(parent, "out"))
	l, err := d.Lock(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	stale := []string{".saved_model.tmp-1/variables/x", ".tmp-cifar10.weights-9.index", ".run.json.tmp-3", "saved_model.old-5/x",
		".write-probe-1", "checkpoints/.tmp-ckpt-5-9.index", "checkpoints/.checkpoint.tmp-2", "preview/.sheet.jpg.tmp-4"}
	keep := []string{"run.json", "checkpoints/ckpt-5.index", "notes.tmp", "preview/a.jpg"}
	for _, f := range append(stale, keep...) {
		p := filepath.Join(d.Root, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	// A killed --overwrite's old run beside the directory, unlocked.
	aside := filepath.Join(parent, ".out.replaced-123")
	os.MkdirAll(filepath.Join(aside, "checkpoints"), 0o755)
	removed, err := d.RemoveStaleTemps()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != len(stale)+1 {
		t.Errorf("removed %v", removed)
	}
	for _, f := range stale {
		if _, err := os.Stat(filepath.Join(d.Root, f)); err == nil {
			t.Errorf("%s left", f)
		}
	}
	for _, f := range keep {
		if _, err := os.Stat(filepath.Join(d.Root, f)); err != nil {
			t.Errorf("removed %s, not a temp file of this tool", f)
		}
	}
	if _, err := os.Stat(aside); err == nil {
		t.Error("the replaced run beside the directory was left")
	}
}
