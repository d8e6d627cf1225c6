package schemas

import (
	"embed"
	"slices"
	"strconv"
	"strings"
)

// FS holds the class schemas (<class>.v1.json) and their examples
// (examples/<class>.valid.json, examples/<class>.invalid.json, ...).
//
//go:embed *.json examples/*.json
var FS embed.FS

// Classes lists the signal classes of catalog v1, in catalog order.
var Classes = []string{
	"performance-deviation",
	"congestion",
	"fault",
	"sla-risk",
	"sla-breach",
	"maintenance",
	"capacity",
	"intent-report",
	"mitigation",
	"action",
	"intent",
}

const (
	typePrefix = "net.anfed."
	uriPrefix  = "https://anfed.net/schemas/v1/"
)

// Type returns the CloudEvent type of a v1 signal of class:
// net.anfed.<class>.v1. It does not check that class is known.
func Type(class string) string {
	return typePrefix + class + ".v1"
}

// SchemaURI returns the $id of the v1 schema of class, which is also the
// CloudEvent dataschema of its signals. It does not check that class is known.
func SchemaURI(class string) string {
	if u, ok := uris[class]; ok {
		return u // intake fills it in for every signal without one
	}
	return uriPrefix + class + ".json"
}

// uris holds SchemaURI of each class of the catalog, built once.
var uris = func() map[string]string {
	m := make(map[string]string, len(Classes))
	for _, c := range Classes {
		m[c] = uriPrefix + c + ".json"
	}
	return m
}()

// IsSchemaURI reports whether uri is SchemaURI(class), without building it.
func IsSchemaURI(uri, class string) bool {
	rest, ok := strings.CutPrefix(uri, uriPrefix)
	return ok && len(rest) == len(class)+len(".json") && rest[:len(class)] == class && rest[len(class):] == ".json"
}

// SchemaFile returns the name, in FS, of the v1 schema of class.
func SchemaFile(class string) string {
	return class + ".v1.json"
}

// ClassOf parses a CloudEvent type of the form net.anfed.<class>.v<N>.
// ok is false unless class is one of Classes and N is a positive decimal
// integer without leading zeros.
func ClassOf(eventType string) (class string, version int, ok bool) {
	rest, found := strings.CutPrefix(eventType, typePrefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndex(rest, ".v")
	if i <= 0 {
		return "", 0, false
	}
	class, num := rest[:i], rest[i+2:]
	if !slices.Contains(Classes, class) {
		return "", 0, false
	}
	if num == "" || num[0] == '0' || len(num) > 9 {
		return "", 0, false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return "", 0, false
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return "", 0, false
	}
	return class, n, true
}
