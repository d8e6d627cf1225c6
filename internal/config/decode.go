package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxValues bounds how many values one file may decode to, so that a few
// lines of YAML aliases cannot expand into millions of peers.
const maxValues = 100_000

var syntaxErrorRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// parseNode reads the single YAML document in data. A nil node and nil error
// mean the file holds no document.
func parseNode(name string, data []byte) (*yaml.Node, Errors) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Errors{syntaxError(name, err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, Errors{syntaxError(name, err)}
	default:
		return nil, Errors{{File: name, Line: next.Line, Column: next.Column,
			Msg: "a second YAML document", Hint: `a policy file holds one document: remove the "---" and what follows`}}
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return &doc, nil
}

func syntaxError(name string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := syntaxErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	// yaml.v3 counts lines from 0 in the parser's errors (not the
	// scanner's), and leaves out line 0: turn those into 1-based lines.
	for _, p := range parserProblems {
		if strings.HasPrefix(msg, p) {
			line++
			break
		}
	}
	return &Error{File: name, Line: line, Msg: "YAML syntax: " + msg}
}

// parserProblems start the messages of yaml.v3's parser errors.
var parserProblems = []string{
	"did not find expected",
	"found undefined tag handle",
	"found duplicate %",
	"found incompatible YAML document",
}

// decoder fills a Go value from a yaml.Node tree strictly: unknown keys,
// repeated keys and values of the wrong type are all collected as errors,
// each at its own node, and decoding goes on.
type decoder struct {
	file   string
	errs   Errors
	values int
	merges mergeCache
}

func (d *decoder) fail(n *yaml.Node, path, msg, hint string) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Path: path, Msg: msg, Hint: hint})
}

// covered returns a test for whether a decode error was already reported
// at a path or one of its ancestors, so that the semantic checks do not
// repeat it.
func (d *decoder) covered() func(path string) bool {
	at := map[string]bool{}
	for _, e := range d.errs {
		at[e.Path] = true
	}
	return func(path string) bool {
		if at[""] || at[path] {
			return true
		}
		for i := range len(path) {
			if (path[i] == '.' || path[i] == '[') && at[path[:i]] {
				return true
			}
		}
		return false
	}
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
)

const timeHint = "write an RFC 3339 time, e.g. 2027-01-01T00:00:00Z"

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return
	}
	if d.values++; d.values > maxValues {
		if d.values == maxValues+1 {
			d.fail(n, path, fmt.Sprintf("the file expands to more than %d values", maxValues), "check the YAML aliases (*name)")
		}
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		d.leaf(n, v, path)
		return
	}
	if v.Type() == timeType {
		d.time(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "want a list, got "+describe(n), `write a YAML list: one "- item" per line, or [a, b]`)
			return
		}
		if len(n.Content) == 0 {
			return // nil, as for an absent key, so that configs compare equal
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		d.leaf(n, v, path)
	}
}

func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	err := n.Decode(v.Addr().Interface())
	if err == nil {
		return
	}
	var e *Error
	if errors.As(err, &e) {
		d.fail(n, path, e.Msg, e.Hint)
		return
	}
	d.fail(n, path, fmt.Sprintf("want %s, got %s", typeName(v.Type()), describe(n)), "")
}

// time reads an RFC 3339 timestamp, quoted or not.
func (d *decoder) time(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "want a time, got "+describe(n), timeHint)
		return
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(n.Value))
	if err != nil {
		d.fail(n, path, fmt.Sprintf("invalid time %q", n.Value), timeHint)
		return
	}
	v.Set(reflect.ValueOf(t))
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	fields, names := yamlFields(v.Type())
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of keys, got "+describe(n), "valid keys here: "+strings.Join(names, ", "))
		return
	}
	seen := map[string]*yaml.Node{}
	failMerge := func(n *yaml.Node, _, msg, hint string) { d.fail(n, path, msg, hint) }
	for _, kv := range d.merges.pairs(n, failMerge) {
		key := kv.key
		if key.Kind != yaml.ScalarNode {
			d.fail(key, path, "a key must be a plain name, got "+describe(key), "valid keys here: "+strings.Join(names, ", "))
			continue
		}
		p := joinPath(path, key.Value)
		if first, ok := seen[key.Value]; ok {
			d.fail(key, p, fmt.Sprintf("key %q given twice (first at line %d)", key.Value, first.Line), "keep one of them")
			continue
		}
		seen[key.Value] = key
		i, ok := fields[key.Value]
		if !ok {
			d.fail(key, p, fmt.Sprintf("unknown key %q", key.Value), suggest(key.Value, names, "valid keys here"))
			continue
		}
		d.decode(kv.value, v.Field(i), p)
	}
}

// yamlFields maps the yaml keys of struct type t to field indexes, and
// lists the keys in declaration order.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = i
		names = append(names, name)
	}
	return fields, names
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	}
	return t.String()
}

func describe(n *yaml.Node) string {
	switch resolve(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

type pair struct{ key, value *yaml.Node }

// mergeCache expands YAML merge keys ("<<: *base") once per mapping, so
// that chains of merges cost linear, not exponential, time.
type mergeCache struct {
	done     map[*yaml.Node][]pair
	visiting map[*yaml.Node]bool
}

// pairs lists the key/value pairs of mapping n with merge keys expanded:
// keys written in n win over merged ones, earlier merges over later ones.
// Malformed merges are reported through fail, which may be nil.
func (c *mergeCache) pairs(n *yaml.Node, fail func(n *yaml.Node, path, msg, hint string)) []pair {
	if ps, ok := c.done[n]; ok {
		return ps
	}
	if c.done == nil {
		c.done, c.visiting = map[*yaml.Node][]pair{}, map[*yaml.Node]bool{}
	}
	c.visiting[n] = true
	defer delete(c.visiting, n)
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!merge" {
			own = append(own, pair{k, v})
			continue
		}
		v = resolve(v)
		srcs := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, src := range srcs {
			src = resolve(src)
			switch {
			case src.Kind != yaml.MappingNode:
				if fail != nil {
					fail(src, "", "want a mapping to merge, got "+describe(src), "write <<: *name, where &name marks a mapping")
				}
			case c.visiting[src]:
				if fail != nil {
					fail(k, "", "a merge includes itself", "")
				}
			default:
				merged = append(merged, c.pairs(src, fail)...)
			}
		}
	}
	have := map[string]bool{}
	for _, p := range own {
		have[p.key.Value] = true
	}
	out := own
	for _, p := range merged {
		if !have[p.key.Value] {
			have[p.key.Value] = true
			out = append(out, p)
		}
	}
	c.done[n] = out
	return out
}

// nodeAt finds the node at path (as in "peers[1].export.classes[0]") under
// root. When the path does not exist it returns the deepest node on the way
// (the parent mapping of a missing key) and false.
func nodeAt(root *yaml.Node, path string, merges *mergeCache) (*yaml.Node, bool) {
	n := resolve(root)
	if n == nil || path == "" {
		return n, n != nil
	}
	for _, seg := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(seg, "[")
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for _, p := range merges.pairs(n, nil) {
				if p.key.Kind == yaml.ScalarNode && p.key.Value == key {
					next = resolve(p.value)
					break
				}
			}
		}
		if next == nil {
			return n, false
		}
		n = next
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			rest = strings.TrimPrefix(after, "[")
			i, err := strconv.Atoi(idx)
			if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return n, false
			}
			n = resolve(n.Content[i])
		}
	}
	return n, true
}
