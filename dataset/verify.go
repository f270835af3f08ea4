package dataset

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// MemoFile remembers, next to the batches, each file's size, mtime and MD5
// so that the MD5s are computed once; a file whose size or mtime changed is
// hashed again.
const MemoFile = ".md5.json"

// memoEntry identifies a file's version by size, mtime, inode and ctime.
// The mtime alone can be put back (touch -d, utimes) after a byte was
// changed; the ctime cannot: the kernel sets it to now on every write and
// on every utimes, so a restored mtime still leaves a new ctime. The inode
// catches a file replaced by rename. Re-hashing every time would be the
// alternative, at ~0.5 s per run for CIFAR-10; this costs nothing.
type memoEntry struct {
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Inode   uint64 `json:"inode"`
	MD5     string `json:"md5"`
}

func statEntry(st os.FileInfo) memoEntry {
	e := memoEntry{Size: st.Size(), MtimeNs: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		e.CtimeNs = sys.Ctim.Sec*1e9 + sys.Ctim.Nsec
		e.Inode = sys.Ino
	}
	return e
}

type memo struct {
	Files map[string]memoEntry `json:"files"`
}

func readMemo(dir string) memo {
	m := memo{Files: map[string]memoEntry{}}
	if b, err := os.ReadFile(filepath.Join(dir, MemoFile)); err == nil {
		if json.Unmarshal(b, &m) != nil || m.Files == nil {
			m.Files = map[string]memoEntry{}
		}
	}
	return m
}

// FileMD5s returns the MD5 of each named file in dir, from the memo when the
// file's size and mtime are unchanged, hashing it (and updating the memo)
// otherwise. A memo that cannot be written (read-only dir) is not an error.
func FileMD5s(dir string, files []string) (map[string]string, error) {
	m := readMemo(dir)
	out := map[string]string{}
	changed := false
	for _, f := range files {
		p := filepath.Join(dir, f)
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w: the file is missing; restore it (or delete the cache dir and run pipeline data fetch)", p, unwrapPath(err))
		}
		now := statEntry(st)
		if e, ok := m.Files[f]; ok && len(e.MD5) == 32 && e.Size == now.Size && e.MtimeNs == now.MtimeNs && e.CtimeNs == now.CtimeNs && e.Inode == now.Inode {
			out[f] = e.MD5
			continue
		}
		sum, err := md5File(p)
		if err != nil {
			return nil, err
		}
		out[f] = sum
		now.MD5 = sum
		m.Files[f] = now
		changed = true
	}
	if changed {
		if b, err := json.MarshalIndent(m, "", "  "); err == nil {
			_ = writeFileAtomic(filepath.Join(dir, MemoFile), append(b, '\n'))
		}
	}
	return out, nil
}

func md5File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VerifyOfficial checks that dir (a cifar-10-batches-bin directory) holds
// the six official batches with their official MD5s (want; nil means
// OfficialMD5) and a batches.meta.txt. It returns the verified MD5s.
func VerifyOfficial(dir string, want map[string]string) (map[string]string, error) {
	if want == nil {
		want = OfficialMD5()
	}
	names := sortedKeys(want)
	if _, err := os.Stat(filepath.Join(dir, MetaFile)); err != nil {
		return nil, fmt.Errorf("read %s: %w: delete %s and run pipeline data fetch", filepath.Join(dir, MetaFile), unwrapPath(err), dir)
	}
	return checkMD5s(dir, names, want)
}

// VerifyLocal checks a user's directory: files of the official size must
// have the official MD5 (a wrong one is an error); files of other sizes
// (a subset, a synthetic set) have no MD5 requirement and are not hashed,
// nor is anything in a directory holding SyntheticMarker. It returns the
// MD5s it checked.
func VerifyLocal(dir string) (map[string]string, error) {
	want := OfficialMD5()
	if _, err := os.Stat(filepath.Join(dir, SyntheticMarker)); err == nil {
		return map[string]string{}, nil
	}
	var official []string
	for _, f := range BatchFiles() {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w: the batch is missing; restore it or point data.dir elsewhere", filepath.Join(dir, f), unwrapPath(err))
		}
		if st.Size() == OfficialBatchSize {
			official = append(official, f)
		}
	}
	return checkMD5s(dir, official, want)
}

// checkMD5s hashes files in dir (through the memo) and fails on the first
// whose MD5 is not want's.
func checkMD5s(dir string, files []string, want map[string]string) (map[string]string, error) {
	got, err := FileMD5s(dir, files)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if got[f] != want[f] {
			return nil, md5Error(dir, f, got[f], want[f])
		}
	}
	return got, nil
}

func md5Error(dir, f, got, want string) error {
	return fmt.Errorf("%s: md5 %s, want %s: the file is corrupt; replace that one file with %s from the official archive %s", filepath.Join(dir, f), got, want, f, OfficialURL)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// writeError phrases a failed write as one line naming the file, with the
// fix for the usual causes (disk full, permissions).
func writeError(path string, err error) error {
	err = unwrapPath(err)
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("write %s: %w: free disk space in %s (or move the cache with data.cache_dir / CIFAR_PIPELINE_CACHE) and run again", path, err, filepath.Dir(path))
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("write %s: %w: make %s writable (or move the cache with data.cache_dir / CIFAR_PIPELINE_CACHE)", path, err, filepath.Dir(path))
	}
	return fmt.Errorf("write %s: %w", path, err)
}
