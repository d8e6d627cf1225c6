package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/peering"
)

// maxIntentFile bounds `anfed intents create FILE`.
const maxIntentFile = 256 << 10

// runIntents is `anfed intents [list|show ID|create FILE|delete ID]`:
// the node's TMF921 intents over its HTTP API (the intents are the HTTP
// API's resources; the other tools use the NATS API).
func runIntents(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	verb := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	fs := newFlagSet("intents", stderr)
	setUsage(fs, "Usage:\n  anfed intents [list] [flags]\n  anfed intents show ID [flags]\n  anfed intents create FILE [flags]\n  anfed intents delete ID [flags]\n")
	base := fs.String("url", "", "the node's HTTP server, e.g. http://127.0.0.1:8440 (default with --config: its http.listen; else http://"+config.DefaultHTTPListen+")")
	tokenFile := fs.String("token-file", "", "a file holding the intent API's bearer token (default with --config: its intents.token_file or http.token_file)")
	policy := fs.String("config", "", "the node's policy file: its HTTP server and token")
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	var pos []string // flags may come after the id or file
	for {
		if err := fs.Parse(args); err != nil {
			return flagExit(err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "anfed intents %s: %s\n", verb, fmt.Sprintf(format, a...))
		return exitFail
	}
	url, tf := *base, *tokenFile
	if *policy != "" {
		p, err := peering.OpenPolicy(*policy)
		if err != nil {
			return fail("%v", err)
		}
		cfg, _, err := p.Load()
		if err != nil {
			return fail("%v", err)
		}
		if url == "" {
			if cfg.HTTP.Listen == "" {
				return fail("%s has no http.listen: name the node with --url", *policy)
			}
			url = "http://" + cfg.HTTP.Listen
		}
		if tf == "" {
			tf = cfg.HTTP.TokenFile
			if cfg.Intents != nil && cfg.Intents.TokenFile != "" {
				tf = cfg.Intents.TokenFile
			}
		}
	}
	if url == "" {
		url = "http://" + config.DefaultHTTPListen
	}
	if tf == "" {
		return fail("--token-file is required (or --config with the node's policy file)")
	}
	tok, err := config.ReadToken(tf)
	if err != nil {
		return fail("--token-file: %v", err)
	}
	api := strings.TrimSuffix(url, "/") + intent.BasePath + "/intent"
	call := func(method, url string, body []byte) (int, []byte, error) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, method, url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("ask the node: %w", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		return resp.StatusCode, b, err
	}
	// answer prints b, or the node's error, and returns the exit code.
	answer := func(code int, b []byte, want int, print func([]byte) error) int {
		if code != want {
			var e struct{ Message string }
			if json.Unmarshal(b, &e) == nil && e.Message != "" {
				return fail("%d: %s", code, e.Message)
			}
			return fail("%d: %s", code, bytes.TrimSpace(b))
		}
		if *asJSON || print == nil {
			if len(b) > 0 {
				fmt.Fprintln(stdout, string(bytes.TrimSpace(b)))
			}
			return exitOK
		}
		if err := print(b); err != nil {
			return fail("the node answered %q: %v", b, err)
		}
		return exitOK
	}
	one := func(id string) (string, bool) {
		if len(pos) != 1 {
			fmt.Fprintf(stderr, "anfed intents %s: want one %s\n", verb, id)
			return "", false
		}
		return pos[0], true
	}
	printOne := func(b []byte) error {
		var in intent.Intent
		if err := json.Unmarshal(b, &in); err != nil {
			return err
		}
		printIntents(stdout, []intent.Intent{in})
		return nil
	}
	switch verb {
	case "list":
		code, b, err := call(http.MethodGet, api, nil)
		if err != nil {
			return fail("%v", err)
		}
		return answer(code, b, http.StatusOK, func(b []byte) error {
			var ins []intent.Intent
			if err := json.Unmarshal(b, &ins); err != nil {
				return err
			}
			printIntents(stdout, ins)
			return nil
		})
	case "show":
		id, ok := one("intent id")
		if !ok {
			return exitUsage
		}
		code, b, err := call(http.MethodGet, api+"/"+id, nil)
		if err != nil {
			return fail("%v", err)
		}
		if code == http.StatusOK && !*asJSON {
			rcode, rb, err := call(http.MethodGet, api+"/"+id+"/intentReport", nil)
			if err != nil {
				return fail("%v", err)
			}
			return answer(code, b, http.StatusOK, func(b []byte) error {
				var rs []intent.Report
				if err := printOne(b); err != nil {
					return err
				}
				if rcode == http.StatusOK && json.Unmarshal(rb, &rs) == nil {
					for _, r := range rs {
						v := r.Expression.ExpressionValue
						fmt.Fprintf(stdout, "report %s %s from %s: %s %s\n", stamp(r.CreationDate), r.ID, v.From, v.LifecycleStatus, v.Reason)
					}
				}
				return nil
			})
		}
		return answer(code, b, http.StatusOK, nil)
	case "create":
		file, ok := one("file (a TMF921 Intent, JSON)")
		if !ok {
			return exitUsage
		}
		body, err := boundedfile.Read(file, maxIntentFile)
		if err != nil {
			return fail("%v", err)
		}
		code, b, err := call(http.MethodPost, api, body)
		if err != nil {
			return fail("%v", err)
		}
		return answer(code, b, http.StatusCreated, printOne)
	case "delete":
		id, ok := one("intent id")
		if !ok {
			return exitUsage
		}
		code, b, err := call(http.MethodDelete, api+"/"+id, nil)
		if err != nil {
			return fail("%v", err)
		}
		if code == http.StatusNoContent {
			fmt.Fprintf(stdout, "intent %s removed\n", id)
			return exitOK
		}
		return answer(code, b, http.StatusAccepted, printOne)
	}
	fmt.Fprintf(stderr, "anfed intents: unknown verb %q: list, show ID, create FILE, delete ID\n", verb)
	return exitUsage
}

func printIntents(w io.Writer, ins []intent.Intent) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tOWNER\tPARTNER\tSERVICE\tSTATUS\tSINCE\tNAME\tREASON")
	for _, in := range ins {
		partner, service := "-", "-"
		if v := in.Expression.ExpressionValue; v != nil {
			partner, service = v.Partner, v.Service
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Role, in.Owner, partner, service, in.LifecycleStatus, stamp(in.StatusChangeDate), in.Name, in.StatusReason)
	}
	tw.Flush()
	if len(ins) != 1 {
		fmt.Fprintf(w, "%d intent(s)\n", len(ins))
	}
}
