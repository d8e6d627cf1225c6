package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/anfed/anfed/internal/asyncapi"
	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/explain"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/schemacheck"
)

const policyUsage = `anfed policy: check, explain and describe policy files

  anfed policy check [--json] FILE...
      every problem of each policy file (.yaml) or signal file (.json), with
      file, line and hint, and the warnings; exit status 1 on any problem
  anfed policy explain --config FILE [--from PEER] [--peer-config FILE]... [--intents FILE] [--json] SIGNAL.json...
      for each peer: would it receive the signal, and which rule decided
  anfed policy asyncapi --config FILE --peer ID [-o|--out FILE]
      an AsyncAPI 3.0.0 document of what the peer can subscribe to on its link
`

func runPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return exitUsage
	}
	switch args[0] {
	case "check":
		return runPolicyCheck("policy check", args[1:], stdout, stderr)
	case "explain":
		return runPolicyExplain(args[1:], stdout, stderr)
	case "asyncapi":
		return runPolicyAsyncAPI(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "anfed policy: unknown command %q\n\n%s", args[0], policyUsage)
	return exitUsage
}

// Problem is one error or warning of a checked file, for --json.
type Problem struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// FileCheck is what `anfed policy check` found in one file.
type FileCheck struct {
	File     string    `json:"file"`
	Kind     string    `json:"kind"` // policy or signal
	OK       bool      `json:"ok"`
	Summary  string    `json:"summary,omitempty"`
	Errors   []Problem `json:"errors"`
	Warnings []Problem `json:"warnings"`
}

func problem(e *config.Error) Problem {
	return Problem{Line: e.Line, Column: e.Column, Path: e.Path, Message: e.Msg, Hint: e.Hint}
}

// checkFile checks one policy or signal file.
func (v *validator) checkFile(name string) FileCheck {
	fc := FileCheck{File: name, Kind: "policy", Errors: []Problem{}, Warnings: []Problem{}}
	data, err := config.ReadPolicy(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		fc.Errors = append(fc.Errors, Problem{Message: err.Error()})
		return fc
	}
	if isSignalFile(name, data) {
		fc.Kind = "signal"
		ev, class, err := v.insp.Full(nil, data)
		if err != nil {
			fc.Errors = append(fc.Errors, Problem{Message: "invalid signal: " + err.Error()})
			return fc
		}
		fc.OK = true
		fc.Summary = fmt.Sprintf("signal %s (%s) %s %s from %s", ev.ID, class, ev.State, ev.Subject, ev.Origin)
		return fc
	}
	cfg, errs, warnings := config.CheckAll(name, data)
	for _, e := range errs {
		fc.Errors = append(fc.Errors, problem(e))
	}
	for _, w := range warnings {
		fc.Warnings = append(fc.Warnings, problem(w))
	}
	if cfg != nil {
		fc.OK = true
		fc.Summary = fmt.Sprintf("policy of %s with %d peer(s)", cfg.Operator.ID, len(cfg.Peers))
	}
	return fc
}

// runPolicyCheck is `anfed policy check`, and `anfed validate`, its alias.
func runPolicyCheck(name string, args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet(name, stderr)
	asJSON := fset.Bool("json", false, "print JSON, for scripts")
	if err := fset.Parse(args); err != nil {
		return flagExit(err)
	}
	if fset.NArg() == 0 {
		fmt.Fprintf(stderr, "anfed %s: name one or more files: policy files (.yaml) or signal files (.json)\n", name)
		return exitUsage
	}
	v, err := newValidator()
	if err != nil {
		fmt.Fprintf(stderr, "anfed %s: %v\n", name, err)
		return exitFail
	}
	code := exitOK
	var all []FileCheck
	for _, f := range fset.Args() {
		fc := v.checkFile(f)
		if !fc.OK {
			code = exitFail
		}
		all = append(all, fc)
		if !*asJSON {
			writeFileCheck(fc, stdout, stderr)
		}
	}
	if *asJSON {
		out, _ := json.MarshalIndent(all, "", "  ")
		fmt.Fprintln(stdout, string(out))
	}
	return code
}

// writeFileCheck prints one file's result: warnings and the ok line on
// stdout, problems on stderr, each as file:line:col: path: msg (hint).
func writeFileCheck(fc FileCheck, stdout, stderr io.Writer) {
	located := func(p Problem) error {
		return &config.Error{File: fc.File, Line: p.Line, Column: p.Column, Path: p.Path, Msg: p.Message, Hint: p.Hint}
	}
	for _, w := range fc.Warnings {
		fmt.Fprintf(stdout, "warning: %v\n", located(w))
	}
	if fc.OK {
		fmt.Fprintf(stdout, "%s: ok: %s\n", fc.File, fc.Summary)
		return
	}
	if len(fc.Errors) > 1 {
		fmt.Fprintf(stderr, "%d problems in %s:\n", len(fc.Errors), fc.File)
	}
	for _, e := range fc.Errors {
		fmt.Fprintln(stderr, located(e))
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func runPolicyExplain(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("policy explain", stderr)
	file := fset.String("config", "", "the node's policy file (YAML)")
	from := fset.String("from", "", "the peer the signal arrives from: explain the import side too")
	var peerFiles stringList
	fset.Var(&peerFiles, "peer-config", "a peer's policy file (repeatable): its NATS permissions and import side are explained too")
	asJSON := fset.Bool("json", false, "print JSON, for scripts")
	intentsFile := fset.String("intents", "", "the node's intents as `anfed intents --json` prints them: export.intent_classes is judged by those it accepted, and the verdict names the intent")
	if err := fset.Parse(args); err != nil {
		return flagExit(err)
	}
	if *file == "" || fset.NArg() == 0 {
		fmt.Fprintln(stderr, "anfed policy explain: want --config FILE and one or more signal files (structured CloudEvents, as `anfed publish --file` takes)")
		return exitUsage
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	cat, err := schemacheck.Load()
	if err != nil {
		fmt.Fprintln(stderr, "anfed policy explain: load signal catalog:", err)
		return exitFail
	}
	var opts []explain.Option
	for _, f := range peerFiles {
		pc, err := config.Load(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		if _, ok := cfg.Peer(pc.Operator.ID); !ok {
			fmt.Fprintf(stderr, "anfed policy explain: --peer-config %s: %s is not a peer of %s\n", f, pc.Operator.ID, cfg.Operator.ID)
			return exitUsage
		}
		opts = append(opts, explain.WithPeerConfig(pc))
	}
	if *intentsFile != "" {
		b, err := boundedfile.Read(*intentsFile, 16<<20)
		if err != nil {
			fmt.Fprintln(stderr, "anfed policy explain: --intents:", err)
			return exitFail
		}
		var ins []intent.Intent
		if err := json.Unmarshal(b, &ins); err != nil {
			fmt.Fprintf(stderr, "anfed policy explain: --intents %s: want the JSON list `anfed intents --json` prints: %v\n", *intentsFile, err)
			return exitUsage
		}
		opts = append(opts, explain.WithIntents(intent.ViewOf(ins)))
	}
	ex, err := explain.New(cfg, cat, opts...)
	if err != nil {
		fmt.Fprintln(stderr, "anfed policy explain:", err)
		return exitFail
	}
	var reports []*explain.Report
	for _, f := range fset.Args() {
		bodies, err := readSignals(f, os.Stdin)
		if err == nil && len(bodies) == 0 {
			err = errors.New("holds no signal")
		}
		if err != nil {
			fmt.Fprintf(stderr, "anfed policy explain: %s: %v\n", f, err)
			return exitFail
		}
		for i, b := range bodies {
			ev, class, err := ex.Decode(b)
			if err != nil {
				fmt.Fprintf(stderr, "anfed policy explain: %s: signal %d: invalid: %v\n", f, i+1, err)
				return exitFail
			}
			r, err := ex.Explain(ev, class, *from)
			if err != nil {
				fmt.Fprintf(stderr, "anfed policy explain: %v\n", err)
				return exitUsage
			}
			reports = append(reports, r)
		}
	}
	if *asJSON {
		out, _ := json.MarshalIndent(reports, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := r.WriteText(stdout); err != nil {
			fmt.Fprintln(stderr, "anfed policy explain:", err)
			return exitFail
		}
	}
	return exitOK
}

func runPolicyAsyncAPI(args []string, stdout, stderr io.Writer) int {
	fset := newFlagSet("policy asyncapi", stderr)
	file := fset.String("config", "", "the node's policy file (YAML)")
	peer := fset.String("peer", "", "the peer whose view of the link to describe")
	out := outFlag(fset, "write the document to this file (default: standard output)")
	if err := fset.Parse(args); err != nil {
		return flagExit(err)
	}
	if *file == "" || *peer == "" || fset.NArg() > 0 {
		fmt.Fprintln(stderr, "anfed policy asyncapi: want --config FILE --peer ID [-o|--out FILE]")
		return exitUsage
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	doc, err := asyncapi.Document(cfg, *peer)
	if err != nil {
		fmt.Fprintln(stderr, "anfed policy asyncapi:", err)
		return exitUsage
	}
	if *out == "" {
		_, err = stdout.Write(doc)
	} else {
		err = os.WriteFile(*out, doc, 0o644)
	}
	if err != nil {
		fmt.Fprintln(stderr, "anfed policy asyncapi:", err)
		return exitFail
	}
	return exitOK
}
