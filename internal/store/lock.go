package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the file in the store directory that the node holding the
// directory keeps locked.
const LockFile = "anfed.lock"

// DirLock is the exclusive hold of one process on a store directory: a
// second node on the same directory would open the first one's JetStream
// files and rebuild them under it. The lock is the kernel's (flock), on an
// open file: it goes with the process, so a file left by a killed node
// does not keep the next one out.
type DirLock struct {
	f *os.File
}

// ErrLocked is what LockDir's error wraps when another process holds the
// directory.
var ErrLocked = errors.New("store directory in use")

// LockDir takes dir (created if missing) for this process, before
// anything else opens its files, and writes our PID into the lock file
// for whoever finds it taken.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage.dir %s: %w", dir, err)
	}
	name := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage.dir %s: lock: %w", dir, err)
	}
	if err := flock(f); err != nil {
		if !errors.Is(err, ErrLocked) {
			f.Close()
			return nil, fmt.Errorf("storage.dir %s: lock %s: %w", dir, name, err)
		}
		b, _ := os.ReadFile(name)
		f.Close()
		holder := "another process"
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
			holder = "process " + strconv.Itoa(pid)
		}
		return nil, fmt.Errorf("storage.dir %s is held by %s (it locks %s): a second node on the same store would destroy its signals; stop that node first, or give this one its own storage.dir (%w)",
			dir, holder, name, ErrLocked)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("storage.dir %s: lock: %w", dir, err)
		}
	}
	return &DirLock{f: f}, nil
}

// Release gives the directory up. The lock file stays: removing it would
// let a third process lock a new file while a second still waits on the
// old one.
func (l *DirLock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
}
