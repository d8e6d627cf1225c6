package main

import (
	"fmt"
	"io"
	"os"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/schemacheck"
)

type validator struct {
	insp *inspect.Inspector
}

func newValidator() (*validator, error) {
	c, err := schemacheck.Load()
	if err != nil {
		return nil, fmt.Errorf("load signal catalog: %w", err)
	}
	return &validator{insp: inspect.New(c, 0)}, nil
}

// file checks one policy or signal file, prints a line for a good one and
// returns an error that says what is wrong with a bad one.
func (v *validator) file(name string, stdout io.Writer) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if isSignalFile(name, data) {
		ev, class, err := v.insp.Full(nil, data)
		if err != nil {
			return fmt.Errorf("%s: invalid signal: %w", name, err)
		}
		fmt.Fprintf(stdout, "%s: ok: signal %s (%s) %s %s from %s\n", name, ev.ID, class, ev.State, ev.Subject, ev.Origin)
		return nil
	}
	cfg, err := config.Parse(name, data)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "warning: %v\n", w)
	}
	fmt.Fprintf(stdout, "%s: ok: policy of %s with %d peer(s)\n", name, cfg.Operator.ID, len(cfg.Peers))
	return nil
}
