package dataset

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
)

func (f *Fetcher) officialURL() string {
	if f.OfficialURL != "" {
		return f.OfficialURL
	}
	return OfficialURL
}

// fromOfficial downloads the official archive into tmp (progress bar on
// Log, MD5 checked) and extracts the batches into built.
func (f *Fetcher) fromOfficial(ctx context.Context, tmp, built string) error {
	url := f.officialURL()
	ct := f.ConnectTimeout
	if ct <= 0 {
		ct = DefaultConnectTimeout
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: ct}).DialContext,
		TLSHandshakeTimeout:   3 * ct,
		ResponseHeaderTimeout: 10 * ct,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s unreachable: %w", url, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %s", url, resp.Status)
	}
	archive := filepath.Join(tmp, path.Base(req.URL.Path))
	if filepath.Base(archive) == "." || filepath.Base(archive) == "/" {
		archive = filepath.Join(tmp, "cifar-10-binary.tar.gz")
	}
	h := md5.New()
	bar := progressbar.NewOptions64(resp.ContentLength,
		progressbar.OptionSetWriter(f.log()),
		progressbar.OptionSetDescription("cifar-10-binary.tar.gz"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(f.log()) }),
	)
	err = writeAtomic(archive, f.wrap, func(w io.Writer) error {
		_, err := io.Copy(io.MultiWriter(w, h, bar), resp.Body)
		return err
	})
	_ = bar.Finish()
	if err != nil {
		return err
	}
	want := f.archiveMD5
	if want == "" {
		want = OfficialArchiveMD5
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: md5 %s, want %s (download corrupted)", url, got, want)
	}
	return extractOfficial(archive, built, f.wrap)
}

// unwrapURL drops the *url.Error "Get <url>:" prefix (the URL is named once).
func unwrapURL(err error) error {
	type unwrapper interface{ Unwrap() error }
	if u, ok := err.(unwrapper); ok && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}

// extractOfficial extracts cifar-10-batches-bin/{batches, meta} from the
// official .tar.gz into built.
func extractOfficial(archive, built string, wrap func(io.Writer) io.Writer) error {
	fh, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("read %s: %w", archive, unwrapPath(err))
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		return fmt.Errorf("%s: %w: not a gzip archive", archive, err)
	}
	if err := os.MkdirAll(built, 0o755); err != nil {
		return writeError(built, err)
	}
	wanted := map[string]bool{MetaFile: true}
	for _, b := range BatchFiles() {
		wanted[b] = true
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w: archive damaged", archive, err)
		}
		name := path.Base(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || path.Base(path.Dir(hdr.Name)) != BatchesDir || !wanted[name] {
			continue
		}
		if err := writeAtomic(filepath.Join(built, name), wrap, func(w io.Writer) error {
			_, err := io.Copy(w, tr)
			return err
		}); err != nil {
			return err
		}
		delete(wanted, name)
	}
	for name := range wanted {
		return fmt.Errorf("%s: no %s/%s in the archive", archive, BatchesDir, name)
	}
	return nil
}
