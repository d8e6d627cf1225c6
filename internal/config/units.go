package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const durationHint = `write a number with a unit: "90s", "15m", "72h" (units: ns, us, ms, s, m, h; there is no day unit: 3 days is "72h")`

// UnmarshalYAML reads a Go duration such as "90s" or "72h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &Error{Msg: "want a duration, got " + describe(n), Hint: durationHint}
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return &Error{Msg: fmt.Sprintf("invalid duration %q", n.Value), Hint: durationHint}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d in the form UnmarshalYAML reads.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats d like time.Duration without trailing zero units: "72h", "2m", "1h30m".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

const byteSizeHint = `write a whole number of bytes, or a number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. "512MiB", "1GiB")`

// byteUnits are the accepted suffixes, longest first so "kib" is tried before "b".
var byteUnits = []struct {
	name string
	size int64
}{
	{"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"tb", 1e12}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3},
	{"b", 1},
}

// UnmarshalYAML reads a size: an integer number of bytes, or a string with a
// unit (case-insensitive) such as "64MiB" or "1GB".
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &Error{Msg: "want a size, got " + describe(n), Hint: byteSizeHint}
	}
	if n.ShortTag() == "!!int" {
		var v int64
		if err := n.Decode(&v); err != nil {
			return &Error{Msg: fmt.Sprintf("invalid size %q: too large", n.Value), Hint: byteSizeHint}
		}
		*b = ByteSize(v)
		return nil
	}
	v, err := parseByteSize(n.Value)
	if err != nil {
		return &Error{Msg: err.Error(), Hint: byteSizeHint}
	}
	*b = v
	return nil
}

func parseByteSize(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.name) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.name)), u.size
			break
		}
	}
	if t == "" || strings.TrimLeft(t, "0123456789") != "" {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return ByteSize(v * mult), nil
}

// MarshalYAML writes b in the form UnmarshalYAML reads.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// String formats b with the largest unit that divides it exactly, binary
// units first: "1GiB", "500MB", "1000B".
func (b ByteSize) String() string {
	if b > 0 {
		for _, u := range byteUnits[:len(byteUnits)-1] {
			if int64(b)%u.size == 0 {
				return fmt.Sprintf("%d%s", int64(b)/u.size, unitName(u.name))
			}
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

func unitName(lower string) string {
	if strings.HasSuffix(lower, "ib") {
		return strings.ToUpper(lower[:1]) + "iB"
	}
	return strings.ToUpper(lower)
}
