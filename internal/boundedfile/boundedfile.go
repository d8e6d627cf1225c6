// Package boundedfile reads the files a policy names — the policy itself,
// keys, tokens, certificates, credentials — so that a wrong path cannot
// hang or exhaust the node: only a regular file is read (a FIFO, a device
// or a directory is refused without blocking on it), and only up to a
// stated size.
package boundedfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxSize is the bound of a file a policy names: keys, tokens,
// certificates and CA bundles are a few kilobytes.
const MaxSize = 1 << 20

// Error is a file that may not be read.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
)

// Read reads the regular file at path, of at most max bytes. It opens the
// file without blocking (a FIFO would wait for a writer) and checks what
// it opened, not what the path named a moment before.
func Read(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := Check(path, fi, max); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s grew past %s while read: %w", path, Size(max), ErrTooLarge)
	}
	return b, nil
}

// Check reports whether fi, the file at path, may be read: a regular file
// of at most max bytes.
func Check(path string, fi fs.FileInfo, max int64) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %s: %w", path, kind(fi.Mode()), ErrNotRegular)
	}
	if fi.Size() > max {
		return fmt.Errorf("%s is %s, over the limit of %s: %w", path, Size(fi.Size()), Size(max), ErrTooLarge)
	}
	return nil
}

// Exposed reports whether a secret file's mode lets its group or others
// read or write it.
func Exposed(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o077 != 0 }

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

// Size formats n bytes for a message: "1 MiB", "71.3 MiB", "512 B".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
