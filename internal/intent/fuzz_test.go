package intent_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/anfed/anfed/internal/intent"
)

func seedIntents(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "intent-vpn-acme.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{b, []byte(`{}`), []byte(`[]`), []byte(`{"name":"x","expression":{"@type":"JsonLdExpression","expressionValue":{"service":"s","partner":"op-b","expectations":[{"id":"l","metric":"latency","value":1}]}}}`),
		[]byte(`{"validFor":{"endDateTime":"x"}}`), []byte(`{"expression":{"expressionValue":{"expectations":[{"value":"1"}]}}}`)} {
		f.Add(s)
	}
}

// FuzzParseCreate: any body is an intent Validate accepts, or a
// FieldError; never a panic.
func FuzzParseCreate(f *testing.F) {
	seedIntents(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := intent.ParseCreate(b)
		if err != nil {
			var fe *intent.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a FieldError: %T %v", err, err)
			}
			return
		}
		if err := in.Validate(); err != nil {
			t.Fatalf("ParseCreate returned an intent Validate refuses: %v", err)
		}
	})
}

// FuzzParsePatch: any body is a patch or a FieldError; a patch applied
// to the sample is valid or refused with a FieldError.
func FuzzParsePatch(f *testing.F) {
	seedIntents(f)
	base, err := os.ReadFile(filepath.Join("testdata", "intent-vpn-acme.json"))
	if err != nil {
		f.Fatal(err)
	}
	in, err := intent.ParseCreate(base)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := intent.ParsePatch(b)
		var fe *intent.FieldError
		if err != nil {
			if !errors.As(err, &fe) {
				t.Fatalf("not a FieldError: %T %v", err, err)
			}
			return
		}
		out, _, err := p.Apply(*in)
		if err != nil {
			if !errors.As(err, &fe) {
				t.Fatalf("Apply: not a FieldError: %T %v", err, err)
			}
			return
		}
		if err := out.Validate(); err != nil {
			t.Fatalf("Apply returned an intent Validate refuses: %v", err)
		}
	})
}
