package natsconf_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run when a test leaves goroutines behind (a server
// not shut down, a connection not closed). go.uber.org/goleak is not a
// dependency of the module, so this is the same check in a few lines.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkGoroutines(10 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkGoroutines polls until only this goroutine and the runtime's and
// testing's own are left, or d passes.
func checkGoroutines(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		leaked := leakedGoroutines()
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaked %d goroutines:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := strings.Split(string(buf), "\n\n")
	var leaked []string
	for _, s := range stacks[1:] { // stacks[0] is this goroutine
		if benign(s) {
			continue
		}
		leaked = append(leaked, s)
	}
	return leaked
}

func benign(stack string) bool {
	for _, f := range []string{
		"os/signal.signal_recv", "os/signal.loop",
		"testing.(*M).", "testing.tRunner", "testing.runFuzzing", "testing.(*F).",
		"runtime.ReadTrace", "runtime.ensureSigM",
		"internal/fuzz.", "testing/internal/testdeps.",
	} {
		if strings.Contains(stack, f) {
			return true
		}
	}
	return false
}
