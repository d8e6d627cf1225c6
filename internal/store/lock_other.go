//go:build !unix

package store

import "os"

// flock is a no-op where flock(2) does not exist: nothing keeps a second
// node off the directory there (anfed is deployed on Linux).
func flock(*os.File) error { return nil }
