//go:build unix

package store

import (
	"os"
	"syscall"
)

// flock takes f's exclusive lock without waiting; ErrLocked when another
// open file holds it.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EWOULDBLOCK:
			return ErrLocked
		}
		return err
	}
}
