package main

import (
	"fmt"

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
