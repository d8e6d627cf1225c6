package boundedfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	require.NoError(t, os.WriteFile(small, []byte("0123456789"), 0o600))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for _, tc := range []struct {
		name, path string
		max        int64
		want       error
		msg        string
	}{
		{"regular, within the bound", small, 10, nil, ""},
		{"regular, over the bound", small, 9, ErrTooLarge, "is 10 B, over the limit of 9 B"},
		{"a FIFO: refused without waiting for a writer", fifo, MaxSize, ErrNotRegular, "is a FIFO"},
		{"a character device that never ends", "/dev/zero", MaxSize, ErrNotRegular, "is a character device"},
		{"a directory", dir, MaxSize, ErrNotRegular, "is a directory"},
		{"missing", filepath.Join(dir, "nope"), MaxSize, os.ErrNotExist, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			var got []byte
			go func() {
				var err error
				got, err = Read(tc.path, tc.max)
				done <- err
			}()
			select {
			case err := <-done:
				if tc.want == nil {
					require.NoError(t, err)
					assert.Equal(t, "0123456789", string(got))
					return
				}
				assert.True(t, errors.Is(err, tc.want), "%v", err)
				assert.Contains(t, err.Error(), tc.msg)
			case <-time.After(5 * time.Second):
				t.Fatal("Read blocked")
			}
		})
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 1 << 10: "1 KiB", 1536: "1.5 KiB", 1 << 20: "1 MiB", 71 << 20: "71 MiB", 3 << 19: "1.5 MiB"} {
		assert.Equal(t, want, Size(n))
	}
}
