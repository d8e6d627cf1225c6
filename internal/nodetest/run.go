package nodetest

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Output is an io.Writer a test reads while the code under test writes.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Lines is everything written so far, one line each, surrounding blank
// space trimmed.
func (o *Output) Lines() []string { return strings.Split(strings.TrimSpace(o.String()), "\n") }

// Run runs run in a goroutine until the returned stop is called, or the
// test ends: stop cancels run's context and requires it to return nil
// within wait. Calling stop again does nothing.
func Run(t testing.TB, wait time.Duration, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(wait):
				t.Error("run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
