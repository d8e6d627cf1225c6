package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

const tailUsage = `anfed tail: follow the signals a node accepts, live

  anfed tail [--origin OP] [--class C] [--service GLOB] [--state S] [--min-severity N] [--json|--raw] [-n N]
  anfed tail --rejects            follow refused signals (dead letters) instead
  anfed tail --telemetry          follow checked telemetry (an.telsig, never stored) instead

--json re-encodes each signal on one line, for reading. --raw writes each
signal's bytes exactly as the node stored them, then a newline: the data
as its origin signed it, so that the signature can be verified (a record
spans lines only if its producer's data did; -n 1 takes one).

`

// ANSI colours, used only on a terminal (or with --color always).
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiGreen  = "\x1b[32m"
	ansiDim    = "\x1b[2m"
	ansiBold   = "\x1b[1m"
)

type tailFilter struct {
	origin, class, service, state string
	minSeverity                   int
	telemetry                     bool // an.telsig instead of an.sig
}

func (f tailFilter) subject() string {
	tok := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	prefix := subject.SignalPrefix
	if f.telemetry {
		prefix = subject.TelemetryPrefix
	}
	return prefix + "." + tok(f.origin) + "." + tok(f.class) + ".>"
}

func (f tailFilter) match(ev *signal.Event) bool {
	if f.service != "" {
		if ok, _ := path.Match(f.service, ev.Service()); !ok {
			return false
		}
	}
	if f.state != "" && string(ev.State) != f.state {
		return false
	}
	return ev.SeverityNumber >= f.minSeverity
}

func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("tail", stderr)
	setUsage(fs, tailUsage)
	sf := addServerFlags(fs)
	var f tailFilter
	fs.StringVar(&f.origin, "origin", "", "only signals of this origin operator")
	fs.StringVar(&f.class, "class", "", "only this class ("+strings.Join(schemas.Classes, ", ")+")")
	fs.StringVar(&f.service, "service", "", "only services matching this glob, e.g. 'vpn-*'")
	fs.StringVar(&f.state, "state", "", "only raised, updated or cleared")
	fs.IntVar(&f.minSeverity, "min-severity", 0, "only signals with at least this severity number (WARN 13, ERROR 17)")
	rejects := fs.Bool("rejects", false, "follow refused signals (an.dlq.>) instead of accepted ones")
	fs.BoolVar(&f.telemetry, "telemetry", false, "follow checked telemetry (an.telsig.>: ours and our stream peers', never stored) instead of stored signals")
	count := fs.Int("n", 0, "stop after this many (0: until interrupted)")
	color := fs.String("color", "auto", "auto (on a terminal), always or never")
	raw := fs.Bool("raw", false, "write each signal's (or dead letter's) bytes exactly as stored, then a newline")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var problems []string
	if f.origin != "" && subject.Token(f.origin) != f.origin || strings.ContainsAny(f.origin, "*>") {
		problems = append(problems, fmt.Sprintf("--origin %q: an operator id, e.g. op-b", f.origin))
	}
	if f.class != "" && !knownClass(f.class) {
		problems = append(problems, fmt.Sprintf("--class %q: want one of %s", f.class, strings.Join(schemas.Classes, ", ")))
	}
	if _, err := path.Match(f.service, ""); err != nil {
		problems = append(problems, fmt.Sprintf("--service %q: %v", f.service, err))
	}
	switch f.state {
	case "", "raised", "updated", "cleared":
	default:
		problems = append(problems, fmt.Sprintf("--state %q: want raised, updated or cleared", f.state))
	}
	useColor := false
	switch *color {
	case "always":
		useColor = true
	case "never":
	case "auto":
		useColor = isTerminal(stdout)
	default:
		problems = append(problems, fmt.Sprintf("--color %q: want auto, always or never", *color))
	}
	if *raw && *sf.asJSON {
		problems = append(problems, "--raw and --json: choose one")
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "anfed tail: %s\n", strings.Join(problems, "; "))
		return exitUsage
	}

	nc, err := sf.connect()
	if err != nil {
		fmt.Fprintf(stderr, "anfed tail: %v\n", err)
		return exitFail
	}
	defer nc.Close()
	subj := f.subject()
	if *rejects {
		subj = subject.DLQPrefix + ".>"
	}
	msgs := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(subj, msgs)
	if err != nil {
		fmt.Fprintf(stderr, "anfed tail: subscribe %s: %v\n", subj, err)
		return exitFail
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		fmt.Fprintf(stderr, "anfed tail: %v\n", err)
		return exitFail
	}
	if le := nc.LastError(); le != nil {
		fmt.Fprintf(stderr, "anfed tail: %v (may this user subscribe to %s? see nats.users)\n", le, subj)
		return exitFail
	}
	fmt.Fprintf(stderr, "following %s on %s (Ctrl-C to stop)\n", subj, nc.ConnectedUrlRedacted())
	n := 0
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case m := <-msgs:
			var shown bool
			switch {
			case *raw && *rejects:
				shown = writeRaw(stdout, m.Data)
			case *raw:
				ev, err := signal.Decode(m.Header, m.Data)
				shown = err != nil || f.match(ev)
				if shown {
					writeRaw(stdout, m.Data)
				}
			case *rejects:
				shown = printReject(stdout, m, *sf.asJSON, useColor)
			default:
				shown = printSignal(stdout, m, f, *sf.asJSON, useColor)
			}
			if shown {
				n++
				if *count > 0 && n >= *count {
					return exitOK
				}
			}
		}
	}
}

// writeRaw writes body exactly, then a newline.
func writeRaw(w io.Writer, body []byte) bool {
	_, _ = w.Write(body)
	_, _ = w.Write([]byte{'\n'})
	return true
}

func knownClass(c string) bool {
	for _, k := range schemas.Classes {
		if k == c {
			return true
		}
	}
	return false
}

// printSignal prints one accepted signal that passes f: a line, or the
// CloudEvent as JSON on one line.
func printSignal(w io.Writer, m *nats.Msg, f tailFilter, asJSON, useColor bool) bool {
	ev, err := signal.Decode(m.Header, m.Data)
	if err != nil {
		fmt.Fprintf(w, "%s: undecodable: %v\n", m.Subject, err)
		return true
	}
	if !f.match(ev) {
		return false
	}
	if asJSON {
		// One per line: data as carried may span lines.
		var b bytes.Buffer
		if err := json.Compact(&b, ev.Encode()); err != nil {
			return false
		}
		b.WriteByte('\n')
		_, _ = w.Write(b.Bytes())
		return true
	}
	class, _, _ := schemas.ClassOf(ev.Type)
	state := string(ev.State)
	if useColor {
		switch ev.State {
		case signal.Raised:
			state = ansiRed + state + ansiReset
		case signal.Updated:
			state = ansiYellow + state + ansiReset
		case signal.Cleared:
			state = ansiGreen + state + ansiReset
		}
	}
	sev := ev.SeverityText
	if sev == "" {
		sev = "-"
	}
	via := ""
	if len(ev.Path) > 0 {
		via = " via " + strings.Join(ev.Path, ",")
	}
	ts := ev.Time.Local().Format("15:04:05.000")
	if useColor {
		ts = ansiDim + ts + ansiReset
		class = ansiBold + class + ansiReset
	}
	fmt.Fprintf(w, "%s %-6s %-22s %-7s %-5s %s  %s%s\n", ts, ev.Origin, class, state, sev, ev.Subject, ev.ID, via)
	return true
}

// printReject prints one dead letter: who sent it, why it was refused.
func printReject(w io.Writer, m *nats.Msg, asJSON, useColor bool) bool {
	reason, from, detail := m.Header.Get(store.HeaderReason), m.Header.Get(store.HeaderFrom), m.Header.Get(store.HeaderError)
	if asJSON {
		b, _ := json.Marshal(struct {
			Time   time.Time `json:"time"`
			From   string    `json:"from"`
			Reason string    `json:"reason"`
			Error  string    `json:"error"`
			Body   string    `json:"body"`
		}{time.Now().UTC(), from, reason, detail, string(m.Data)})
		_, _ = w.Write(append(b, '\n'))
		return true
	}
	r := reason
	if useColor {
		r = ansiRed + reason + ansiReset
	}
	fmt.Fprintf(w, "%s from %-8s %-18s %s\n", time.Now().Format("15:04:05.000"), from, r, detail)
	return true
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
