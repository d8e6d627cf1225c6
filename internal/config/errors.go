package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a policy file.
type Error struct {
	File   string
	Line   int    // 1-based; 0 when unknown (configs built in code)
	Column int    // 1-based; 0 when unknown
	Path   string // e.g. peers[1].export.classes[0]; "" for the whole file
	Msg    string
	Hint   string // how to fix it; may be ""
}

// Error formats e as "file:line:col: path: msg (hint: ...)", leaving out the
// parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if e.File != "" {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// Errors is every problem found in a policy file, in line order.
type Errors []*Error

// Error lists the problems one per line, after a count when there are several.
func (es Errors) Error() string {
	switch len(es) {
	case 0:
		return "no problems"
	case 1:
		return es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems", len(es))
	if es[0].File != "" {
		fmt.Fprintf(&b, " in %s", es[0].File)
	}
	b.WriteByte(':')
	for _, e := range es {
		b.WriteByte('\n')
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
}

// suggest returns a hint naming the candidate closest to word, if one is
// close enough to be a likely typo, followed by the full list.
func suggest(word string, candidates []string, listName string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(word), c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	list := listName + ": " + strings.Join(candidates, ", ")
	if bestDist >= 0 && (bestDist <= 2 || bestDist <= len(word)/3) {
		return fmt.Sprintf("did you mean %q? %s", best, list)
	}
	return list
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
