package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

const publishUsage = `anfed publish: validate signals, then publish them to a node's intake

From flags (one signal):
  anfed publish --origin op-a --class congestion --subject vpn-acme/ic-1 \
    --state raised --severity WARN --data '{"link":{...},...}' [--expires 1h]
From a file (one CloudEvent, a JSON array, or one per line; - for stdin):
  anfed publish --file signals.json
As telemetry (an.tel: checked and signed, never stored, sent only to
peers with export.delivery: stream; accepted means handed on):
  anfed publish --telemetry --file kpis.json

Every signal is checked against the catalog first; if one is invalid,
nothing is sent. Each answer is printed; the exit code is 1 when a signal
was refused or not answered.

`

// severities maps the severity texts to OpenTelemetry severity numbers
// (the severity extension's scale).
var severities = map[string]int{"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}

func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("publish", stderr)
	setUsage(fs, publishUsage)
	sf := addServerFlags(fs)
	file := fs.String("file", "", "signals to publish: one CloudEvent (JSON), a JSON array, or one per line; - for stdin; at most "+boundedfile.Size(maxSignalsFile))
	originID := fs.String("origin", "", "flags: this node's operator id (anfedorigin)")
	source := fs.String("source", "", "flags: the producer, anfed://<origin>/<producer> (default anfed://<origin>/cli)")
	class := fs.String("class", "", "flags: the signal class ("+strings.Join(schemas.Classes, ", ")+")")
	subj := fs.String("subject", "", "flags: <service>/<resource>")
	state := fs.String("state", "raised", "flags: raised, updated or cleared")
	severity := fs.String("severity", "", "flags: TRACE, DEBUG, INFO, WARN, ERROR or FATAL")
	data := fs.String("data", "", "flags: the data, a JSON object matching the class schema (@FILE reads it from a file of at most "+boundedfile.Size(maxDataFile)+")")
	expires := fs.Duration("expires", 0, "flags: the signal expires this long from now (anfedexpirytime)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for each answer")
	telemetry := fs.Bool("telemetry", false, "publish to an.tel as telemetry (never stored; for peers with export.delivery: stream) instead of an.pub")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var bodies [][]byte
	var err error
	switch {
	case *file != "" && *class != "":
		fmt.Fprintln(stderr, "anfed publish: give either --file or the signal's flags (--class ...), not both")
		return exitUsage
	case *file != "":
		if bodies, err = readSignals(*file, os.Stdin); err != nil && *file == "-" {
			err = fmt.Errorf("--file -: %w", err)
		} else if err != nil {
			err = fmt.Errorf("--file: %w", err)
		}
	case *class != "":
		var b []byte
		b, err = signalFromFlags(*originID, *source, *class, *subj, *state, *severity, *data, *expires)
		bodies = [][]byte{b}
	default:
		fs.Usage()
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "anfed publish: %v\n", err)
		return exitFail
	}
	if len(bodies) == 0 {
		fmt.Fprintf(stderr, "anfed publish: %s holds no signal\n", *file)
		return exitFail
	}

	// Validate everything before sending anything.
	v, err := newValidator()
	if err != nil {
		fmt.Fprintf(stderr, "anfed publish: %v\n", err)
		return exitFail
	}
	bad := 0
	for i, b := range bodies {
		if _, _, err := v.insp.Full(nil, b); err != nil {
			bad++
			fmt.Fprintf(stderr, "signal %d of %d: invalid: %v\n", i+1, len(bodies), err)
		}
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "anfed publish: %d of %d signal(s) invalid: nothing sent\n", bad, len(bodies))
		return exitFail
	}

	nc, err := sf.connect()
	if err != nil {
		fmt.Fprintf(stderr, "anfed publish: %v\n", err)
		return exitFail
	}
	defer nc.Close()
	intake := subject.IntakePrefix
	if *telemetry {
		intake = subject.TelemetryIntakePrefix
	}
	counts := map[string]int{}
	failed := 0
	start, lastProgress := time.Now(), time.Now()
	enc := json.NewEncoder(stdout)
	for i, b := range bodies {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "anfed publish: interrupted after %d of %d\n", i, len(bodies))
			return exitFail
		}
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		m, err := nc.RequestWithContext(rctx, intake, b)
		cancel()
		var ans signal.Answer
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			ans = signal.Answer{Status: "error", Error: "no node intake answers on " + intake + ": is the node up?"}
		case err != nil:
			ans = signal.Answer{Status: "error", Error: err.Error()}
		default:
			if ans, err = signal.ParseAnswer(m.Data); err != nil {
				ans = signal.Answer{Status: "error", Error: "unreadable answer: " + err.Error()}
			}
		}
		counts[ans.Status]++
		if !ans.OK() {
			failed++
		}
		id := signalID(b)
		if *sf.asJSON {
			_ = enc.Encode(struct {
				ID string `json:"id"`
				signal.Answer
			}{id, ans})
		} else if len(bodies) == 1 || !ans.OK() {
			fmt.Fprintf(stdout, "%s: %s\n", id, describe(ans))
		}
		if len(bodies) > 1 && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			fmt.Fprintf(stderr, "published %d of %d (%.0f/s)\n", i+1, len(bodies), float64(i+1)/time.Since(start).Seconds())
		}
	}
	if len(bodies) > 1 && !*sf.asJSON {
		fmt.Fprintf(stdout, "published %d signal(s) in %v: %d accepted, %d duplicate, %d refused or unanswered\n",
			len(bodies), time.Since(start).Round(time.Millisecond), counts[signal.StatusAccepted], counts[signal.StatusDuplicate], failed)
	}
	if failed > 0 {
		return exitFail
	}
	return exitOK
}

func describe(a signal.Answer) string {
	switch {
	case a.OK():
		return a.Status + " " + a.Subject
	case a.Reason != "":
		return fmt.Sprintf("%s (%s): %s", a.Status, a.Reason, a.Error)
	}
	return a.Status + ": " + a.Error
}

// signalID is the id of an encoded signal, for messages.
func signalID(b []byte) string {
	var x struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &x)
	return x.ID
}

// The bounds of publish's inputs: --file (or stdin) holds up to 256
// signals of the largest size (64 KiB each), --data @FILE one signal's
// data.
const (
	maxSignalsFile = 16 << 20
	maxDataFile    = 64 << 10
)

// readSignals reads one CloudEvent, a JSON array of them, or a sequence
// of them (one per line, or pretty-printed one after another), from the
// regular file name or, for "-", from stdin.
func readSignals(name string, stdin io.Reader) ([][]byte, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, maxSignalsFile+1))
		switch {
		case err != nil:
			return nil, fmt.Errorf("read stdin: %w", err)
		case len(b) > maxSignalsFile:
			return nil, fmt.Errorf("stdin is over the limit of %s: %w (split the signals into several runs)", boundedfile.Size(maxSignalsFile), boundedfile.ErrTooLarge)
		}
	} else if b, err = boundedfile.Read(name, maxSignalsFile); err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(t, &list); err != nil {
			return nil, fmt.Errorf("%s: a JSON array of CloudEvents: %w", name, err)
		}
		out := make([][]byte, len(list))
		for i, r := range list {
			out[i] = r
		}
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var out [][]byte
	for {
		var r json.RawMessage
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: signal %d: not JSON: %w (one CloudEvent, an array, or one per line)", name, len(out)+1, err)
		}
		out = append(out, r)
	}
}

// signalFromFlags builds one signal from the publish flags.
func signalFromFlags(originID, source, class, subj, state, severity, data string, expires time.Duration) ([]byte, error) {
	var problems []string
	if originID == "" {
		problems = append(problems, "--origin is required: this node's operator id")
	}
	typ := schemas.Type(class)
	if typ == "" {
		problems = append(problems, fmt.Sprintf("--class %q: want one of %s", class, strings.Join(schemas.Classes, ", ")))
	}
	if !strings.Contains(subj, "/") {
		problems = append(problems, fmt.Sprintf("--subject %q: want <service>/<resource>, e.g. vpn-acme/ic-paris-1", subj))
	}
	if strings.HasPrefix(data, "@") {
		b, err := boundedfile.Read(data[1:], maxDataFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("--data %s: %v", data, err))
		}
		data = string(b)
	}
	if data == "" {
		problems = append(problems, "--data is required: a JSON object matching the "+class+" schema (see docs/signals.md)")
	}
	ev := &signal.Event{
		ID: nuid.Next(), Source: source, Type: typ, Subject: subj, Time: time.Now().UTC().Truncate(time.Millisecond),
		Origin: originID, State: signal.State(state), Data: json.RawMessage(data),
	}
	if ev.Source == "" {
		ev.Source = "anfed://" + originID + "/cli"
	}
	if severity != "" {
		n, ok := severities[strings.ToUpper(severity)]
		if !ok {
			problems = append(problems, fmt.Sprintf("--severity %q: want TRACE, DEBUG, INFO, WARN, ERROR or FATAL", severity))
		}
		ev.SeverityText, ev.SeverityNumber = strings.ToUpper(severity), n
	}
	if expires > 0 {
		ev.ExpiryTime = time.Now().Add(expires).UTC().Truncate(time.Second)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return ev.Encode(), nil
}

// connect opens a connection to the node the flags name.
func (s serverFlags) connect() (*nats.Conn, error) {
	url, user, password, err := s.credentials()
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{nats.Name("anfed-cli"), nats.Timeout(5 * time.Second)}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, password))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w (is the node running? --server or --config names it; --user and --password-file, or ANFED_USER and ANFED_PASSWORD, the local user)", url, err)
	}
	return nc, nil
}
