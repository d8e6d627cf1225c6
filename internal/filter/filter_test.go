package filter_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/anfed/anfed/internal/filter"
	"github.com/anfed/anfed/internal/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func event() *signal.Event {
	return &signal.Event{
		ID: "e-1", Source: "anfed://op-a/assurance", Type: "net.anfed.congestion.v1", Subject: "vpn-acme/ic-paris-1",
		Time: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC), Origin: "op-a", State: signal.Raised,
		Path: []string{"op-a", "op-b"}, Tags: []string{"no-export", "op-a:gold"},
		SeverityText: "WARN", SeverityNumber: 13, Extensions: map[string]any{"vendorx": "kept", "count": int32(7), "flag": true},
	}
}

// TestCompileRefuses: every syntax error is an error with a message (the
// sdk's parser panics on some of them), and so are unknown functions,
// type errors and expressions that are not conditions.
func TestCompileRefuses(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", "empty expression"},
		{"   ", "empty expression"},
		{"subject = 'a' garbage", "syntax error at column 15"},
		{"subject = ", "syntax error at column 11"},
		{"subject = 'a' AND", "syntax error"},
		{"data.x = 1", "syntax error at column 5"},
		{"subject = 'unterminated", "syntax error"},
		{"2147483648 > 1", "out of range"},
		{"NOSUCH(subject)", "missing function"},
		{"LENGTH(subject, 1) = 2", "missing function"},
		{"time > '2025-01-01'", "cast error"},
		{"subject", "not a condition"},
		{"severitynumber + 1", "not a condition"},
		{strings.Repeat("a", filter.MaxLen+1), "at most 4096"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			f, err := filter.Compile(tc.src)
			assert.Nil(t, f)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
		err  string
	}{
		{"severitynumber >= 13", true, ""},
		{"severitynumber > 13", false, ""},
		{"subject LIKE 'vpn-%' AND type = 'net.anfed.congestion.v1'", true, ""},
		{"SUBJECT like 'VPN-%'", false, ""}, // keywords and names fold case, values do not
		{"anfedorigin = 'op-a' AND anfedstate = 'raised'", true, ""},
		{"anfedpath LIKE '%op-b'", true, ""},
		{"anfedtags LIKE '%op-a:gold%'", true, ""},
		{"EXISTS expirytime", false, ""},
		{"NOT EXISTS expirytime OR expirytime = 'x'", true, ""},
		{"vendorx = 'kept' AND count = 7 AND flag", true, ""},
		{"type IN ('net.anfed.fault.v1', 'net.anfed.congestion.v1')", true, ""},
		{"LOWER(severitytext) = 'warn'", true, ""},
		{"time = '2026-11-25T17:00:00Z'", true, ""},
		// Errors abort the evaluation: no match, and the error says why.
		{"correlationid = 'x'", false, "missing attribute error: correlationid"},
		{"correlationid = 'x' OR TRUE", false, "missing attribute"},
		{"severitynumber / 0 = 1", false, "division by zero"},
		{"INT(vendorx) = 1", false, "cast error"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			f, err := filter.Compile(tc.src)
			require.NoError(t, err)
			assert.Equal(t, tc.src, f.String())
			got, err := f.Match(event())
			assert.Equal(t, tc.want, got)
			if tc.err == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.err)
			}
		})
	}
}

// A compiled filter is evaluated by several goroutines at once (the
// sender, `anfed policy explain`).
func TestMatchConcurrent(t *testing.T) {
	f, err := filter.Compile("severitynumber >= 13 AND anfedtags LIKE '%gold%'")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				ok, err := f.Match(event())
				if !ok || err != nil {
					t.Errorf("match: %v %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzCompile: Compile never panics, whatever the input, and what it
// compiles evaluates without panicking.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"severitynumber >= 13", "subject = 'a' garbage", "subject = ", "a AND", "((((a))))", "'", "\"", "EXISTS",
		"x IN ()", "x IN (1,", "NOT NOT NOT TRUE", "-(-(-1)) = 1", "CONCAT()", "SUBSTRING(subject, 0)", "a LIKE '%\\'",
		"1 = 1 = 1", "TRUE XOR FALSE AND", "ABS(-2147483648) > 0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		flt, err := filter.Compile(src)
		if err != nil {
			return
		}
		_, _ = flt.Match(event())
	})
}
