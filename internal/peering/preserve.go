package peering

import (
	"bytes"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxMergeCells bounds the line tables preserve builds (lines × lines);
// past it the edited policy is written as yaml.v3 encodes it.
const maxMergeCells = 4 << 20

// preserve returns the edited document (edited, as yaml.v3 encodes it)
// written with the original file's text wherever the edit did not touch
// it: yaml.v3 drops blank lines and re-aligns end-of-line comments, and an
// operator's file should only change where anfed changed it.
//
// The original's lines are matched with those of its own yaml.v3
// encoding (base, compared without runs of white space), base's with
// edited's, and every line of edited that comes from base is written as
// the original line it came from, with the blank lines that preceded it.
// The result is used only if it reads as the same YAML as edited.
func preserve(orig, base, edited []byte) []byte {
	o, b, e := lines(orig), lines(base), lines(edited)
	var nonBlank []int // indices in o of the non-blank lines
	for i, l := range o {
		if strings.TrimSpace(l) != "" {
			nonBlank = append(nonBlank, i)
		}
	}
	if len(nonBlank)*len(b) > maxMergeCells || len(b)*len(e) > maxMergeCells {
		return edited
	}
	norm := func(ls []string) []string {
		out := make([]string, len(ls))
		for i, l := range ls {
			out[i] = strings.Join(strings.Fields(l), " ")
		}
		return out
	}
	nb := make([]string, len(nonBlank))
	for i, j := range nonBlank {
		nb[i] = o[j]
	}
	origOf := map[int]int{} // base line -> orig line
	for _, m := range matchLines(norm(b), norm(nb)) {
		origOf[m[0]] = nonBlank[m[1]]
	}
	baseOf := map[int]int{} // edited line -> base line
	for _, m := range matchLines(b, e) {
		baseOf[m[1]] = m[0]
	}
	blankSeparated := len(nonBlank) < len(o)
	var out bytes.Buffer
	last := -1 // the last original line written
	lastBlank := true
	prev := "" // the last line written
	for k, l := range e {
		if bi, ok := baseOf[k]; ok {
			if oi, ok := origOf[bi]; ok && oi > last {
				for j := last + 1; j < oi; j++ {
					if strings.TrimSpace(o[j]) == "" && !lastBlank {
						out.WriteString("\n")
						lastBlank = true
					}
				}
				out.WriteString(o[oi])
				out.WriteString("\n")
				last, lastBlank, prev = oi, false, o[oi]
				continue
			}
		}
		// A new top-level key, or a new item of a list that has items,
		// is set apart as the file's own are.
		newTop := l != "" && l[0] != ' ' && strings.HasPrefix(prev, " ")
		newItem := seqItem.MatchString(l) && !strings.HasSuffix(strings.TrimSpace(prev), ":")
		if blankSeparated && !lastBlank && (newTop || newItem) {
			out.WriteString("\n")
		}
		out.WriteString(l)
		out.WriteString("\n")
		lastBlank, prev = false, l
	}
	merged := out.Bytes()
	if !sameYAML(merged, edited) {
		return edited
	}
	return merged
}

var seqItem = regexp.MustCompile(`^ {0,2}- `)

func lines(data []byte) []string {
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// matchLines returns the pairs (i, j) of a longest common subsequence of
// a and b, in order.
func matchLines(a, b []string) [][2]int {
	n, m := len(a), len(b)
	// l[i][j] is the length of the LCS of a[i:] and b[j:].
	l := make([][]int32, n+1)
	for i := range l {
		l[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			switch {
			case a[i] == b[j]:
				l[i][j] = l[i+1][j+1] + 1
			case l[i+1][j] >= l[i][j+1]:
				l[i][j] = l[i+1][j]
			default:
				l[i][j] = l[i][j+1]
			}
		}
	}
	var out [][2]int
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case a[i] == b[j]:
			out = append(out, [2]int{i, j})
			i++
			j++
		case l[i+1][j] >= l[i][j+1]:
			i++
		default:
			j++
		}
	}
	return out
}

// sameYAML reports whether a and b hold the same YAML values (comments
// aside).
func sameYAML(a, b []byte) bool {
	var va, vb any
	if yaml.Unmarshal(a, &va) != nil || yaml.Unmarshal(b, &vb) != nil {
		return false
	}
	ea, err1 := yaml.Marshal(va)
	eb, err2 := yaml.Marshal(vb)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}
