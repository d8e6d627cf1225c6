package schemacheck

import (
	"encoding/json"
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// decodeFast reads data into the values jsonschema.UnmarshalJSON makes
// (map[string]any, []any, json.Number, string, bool, nil) in one pass and
// without encoding/json's reflection, buffered reader and second scan. It
// gives up (ok false) on anything but well-formed JSON, and the caller
// then asks jsonschema.UnmarshalJSON, for its exact error: so it accepts
// what encoding/json accepts and yields the same values (the fuzz test
// compares the two).
func decodeFast(data []byte) (v any, ok bool) {
	d := fastDecoder{b: data}
	d.ws()
	v, ok = d.value(0)
	if !ok {
		return nil, false
	}
	d.ws()
	return v, d.i == len(d.b)
}

type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) value(depth int) (any, bool) {
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		s, ok := d.str()
		return s, ok
	case c == 't':
		return true, d.lit("true")
	case c == 'f':
		return false, d.lit("false")
	case c == 'n':
		return nil, d.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return nil, false
}

func (d *fastDecoder) lit(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

func (d *fastDecoder) object(depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.i++ // {
	m := make(map[string]any)
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.ws()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v // a repeated name: the last wins, as in encoding/json
		d.ws()
		if d.i >= len(d.b) {
			return nil, false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
			d.ws()
		case '}':
			d.i++
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *fastDecoder) array(depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.i++ // [
	a := []any{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.ws()
		if d.i >= len(d.b) {
			return nil, false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
			d.ws()
		case ']':
			d.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// str reads a string. Plain printable ASCII is copied as it is; one with
// escapes or other bytes goes to encoding/json, for its exact unescaping
// (invalid UTF-8 and lone surrogates become U+FFFD).
func (d *fastDecoder) str() (string, bool) {
	start := d.i
	j := start + 1
	plain := true
	for ; j < len(d.b); j++ {
		c := d.b[j]
		if c == '"' {
			break
		}
		if c == '\\' {
			plain = false
			j++ // skip the escaped byte; encoding/json checks the escape
			continue
		}
		if c < 0x20 {
			return "", false
		}
		if c >= 0x80 {
			plain = false
		}
	}
	if j >= len(d.b) {
		return "", false
	}
	d.i = j + 1
	if plain {
		return string(d.b[start+1 : j]), true
	}
	var s string
	if err := json.Unmarshal(d.b[start:j+1], &s); err != nil {
		return "", false
	}
	return s, true
}

// number reads a JSON number (RFC 8259 grammar) as its text.
func (d *fastDecoder) number() (any, bool) {
	end, ok := numberEnd(d.b, d.i)
	if !ok {
		return nil, false
	}
	start := d.i
	d.i = end
	return json.Number(d.b[start:end]), true
}

// numberEnd returns the end of the JSON number (RFC 8259 grammar) that
// starts at b[i], or false if none does. Both the decoder and the
// compiled validator's scanner read numbers with it.
func numberEnd(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() bool {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > s
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return 0, false
		}
	}
	return i, true
}
