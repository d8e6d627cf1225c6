// Package filter compiles and evaluates the CloudEvents SQL (CESQL v1)
// expressions of export.filter and import.filter, with sdk-go's
// implementation (github.com/cloudevents/sdk-go/sql/v2).
//
// The implementation has sharp edges, which this package files down:
//   - its parser panics on some syntax errors (trailing input, a
//     dangling operator) and reports others with empty messages, and its
//     lexer prints token errors to stdout: Compile first runs the
//     generated lexer and parser with its own error listeners, so a
//     syntax error is an error with its column and ANTLR's message, and
//     only then builds the expression, recovering from any panic;
//   - an unknown function or a type error is found only when evaluating:
//     Compile evaluates the expression once on a sample signal carrying
//     every attribute, and refuses unknown functions, cast errors and
//     results that are not TRUE or FALSE;
//   - any error while evaluating (a missing attribute, even under OR; a
//     cast; a division by zero) aborts the evaluation: Match reports it
//     as no match, with the error, so a filter fails closed.
package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/antlr/antlr4/runtime/Go/antlr"
	cesql "github.com/cloudevents/sdk-go/sql/v2"
	sqlerrors "github.com/cloudevents/sdk-go/sql/v2/errors"
	"github.com/cloudevents/sdk-go/sql/v2/gen"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/anfed/anfed/internal/signal"
)

// MaxLen bounds an expression's length.
const MaxLen = 4096

// Hint says what a filter is, for config errors.
const Hint = `a CloudEvents SQL (CESQL v1) condition on the signal's attributes, e.g. ` +
	`"severitynumber >= 17 AND subject LIKE 'vpn-%'" or "EXISTS anfedtags AND anfedtags LIKE '%op-a:gold%'": ` +
	`strings in single quotes; = <> LIKE IN EXISTS AND OR NOT XOR; < > <= >= compare integers only; ` +
	`the data is not visible (see docs/policy.md#filters)`

// Filter is a compiled CESQL condition.
type Filter struct {
	src  string
	expr cesql.Expression
}

// String is the expression as written.
func (f *Filter) String() string { return f.src }

// Compile parses src and checks it on a sample signal.
func Compile(src string) (*Filter, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty expression")
	}
	if len(src) > MaxLen {
		return nil, fmt.Errorf("%d characters: at most %d", len(src), MaxLen)
	}
	if err := syntax(src); err != nil {
		return nil, err
	}
	expr, err := parse(src)
	if err != nil {
		return nil, err
	}
	f := &Filter{src: src, expr: expr}
	// Unknown functions and type errors show only when evaluating.
	v, err := expr.Evaluate(toCloudEvent(sample()))
	switch {
	case sqlerrors.IsMissingFunctionError(err):
		return nil, fmt.Errorf("%v: CESQL v1 knows ABS, LENGTH, CONCAT, CONCAT_WS, LOWER, UPPER, TRIM, LEFT, RIGHT, SUBSTRING, INT, BOOL, STRING, IS_INT, IS_BOOL", err)
	case sqlerrors.IsCastError(err):
		return nil, fmt.Errorf("%v (for every signal)", err)
	case err != nil:
		// Missing attributes and math errors depend on the signal.
	default:
		if _, ok := v.(bool); !ok {
			return nil, fmt.Errorf("the expression is a value (%v), not a condition: compare it, e.g. subject = 'vpn-acme/ic-1'", v)
		}
	}
	return f, nil
}

// Match evaluates the filter on ev: true when the condition holds. An
// error while evaluating (a missing attribute, say) is no match, and is
// returned to say why.
func (f *Filter) Match(ev *signal.Event) (bool, error) {
	v, err := f.expr.Evaluate(toCloudEvent(ev))
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("the expression gave %v, not TRUE or FALSE", v)
	}
	return b, nil
}

// syntax runs the generated lexer and parser with error listeners of our
// own: sdk-go's listener dereferences a nil exception on some errors.
func syntax(src string) error {
	l := &listener{}
	lexer := gen.NewCESQLParserLexer(cesqlparser.NewCaseChangingStream(antlr.NewInputStream(src), true))
	lexer.RemoveErrorListeners()
	lexer.AddErrorListener(l)
	p := gen.NewCESQLParserParser(antlr.NewCommonTokenStream(lexer, antlr.TokenDefaultChannel))
	p.RemoveErrorListeners()
	p.AddErrorListener(l)
	p.Cesql()
	return l.err
}

type listener struct {
	antlr.DefaultErrorListener
	err error
}

func (l *listener) SyntaxError(_ antlr.Recognizer, _ any, _, column int, msg string, _ antlr.RecognitionException) {
	if l.err == nil {
		l.err = fmt.Errorf("syntax error at column %d: %s", column+1, msg)
	}
}

// parse builds the expression, recovering from a panic of the parser.
func parse(src string) (expr cesql.Expression, err error) {
	defer func() {
		if r := recover(); r != nil {
			expr, err = nil, fmt.Errorf("syntax error: %v", r)
		}
	}()
	expr, err = cesqlparser.Parse(src)
	if err == nil && expr == nil {
		err = errors.New("syntax error")
	}
	return expr, err
}

// toCloudEvent gives CESQL the signal's attributes: the context
// attributes, anfed's and the other extensions. The origin signature
// (dssematerial, signedextattrs) and the data are left out.
func toCloudEvent(ev *signal.Event) cloudevents.Event {
	ce := cloudevents.NewEvent()
	ce.SetID(ev.ID)
	ce.SetSource(ev.Source)
	ce.SetType(ev.Type)
	if ev.Subject != "" {
		ce.SetSubject(ev.Subject)
	}
	if !ev.Time.IsZero() {
		ce.SetTime(ev.Time)
	}
	ce.SetDataContentType(signal.ContentType)
	if ev.DataSchema != "" {
		ce.SetDataSchema(ev.DataSchema)
	}
	str := func(name, v string) {
		if v != "" {
			ce.SetExtension(name, v)
		}
	}
	str(signal.AttrOrigin, ev.Origin)
	str(signal.AttrState, string(ev.State))
	str(signal.AttrPath, strings.Join(ev.Path, ","))
	str(signal.AttrTags, strings.Join(ev.Tags, ","))
	str(signal.AttrCorrelationID, ev.CorrelationID)
	str(signal.AttrCausationID, ev.CausationID)
	if !ev.ExpiryTime.IsZero() {
		str(signal.AttrExpiryTime, ev.ExpiryTime.UTC().Format(time.RFC3339Nano))
	}
	str(signal.AttrSeverityText, ev.SeverityText)
	if ev.SeverityNumber != 0 {
		ce.SetExtension(signal.AttrSeverityNumber, int32(ev.SeverityNumber))
	}
	str(signal.AttrSequence, ev.Sequence)
	str(signal.AttrTraceParent, ev.TraceParent)
	str(signal.AttrTraceState, ev.TraceState)
	for k, v := range ev.Extensions {
		ce.SetExtension(k, v)
	}
	return ce
}

// sample is a signal carrying every attribute, for Compile's check.
func sample() *signal.Event {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &signal.Event{
		ID: "1", Source: "anfed://op-a/assurance", Type: "net.anfed.fault.v1", Subject: "vpn-acme/ic-1", Time: t,
		DataSchema: "https://anfed.net/schemas/v1/fault.json", Origin: "op-a", State: signal.Raised,
		Path: []string{"op-a"}, Tags: []string{"op-a:gold"}, CorrelationID: "c", CausationID: "c",
		ExpiryTime: t.Add(time.Hour), SeverityText: "ERROR", SeverityNumber: 17, Sequence: strconv.Itoa(1),
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "a=1",
	}
}
