// Package audit is the node's audit trail: a record of every signal copy
// it put on a peer's link (the peer, the signal, the SHA-256 of the exact
// bytes sent, the redactions and the export rule) and of every action
// step it saw (who proposed or decided, and why). Records are hash
// chained, one chain per writing process, and kept in the ANFED_AUDIT
// stream of the operations account for audit.max_age.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Record kinds.
const (
	// KindSent: a signal copy put on a peer's link.
	KindSent = "sent"
	// KindAction: an action step (a proposal, a decision, a lease's end)
	// the node stored, ours or a peer's.
	KindAction = "action"
)

// Record is one entry of the trail.
type Record struct {
	// Chain names the writing process's chain; N numbers its records
	// from 1; Prev is the hash of record N-1 ("" for the first).
	Chain string    `json:"chain"`
	N     uint64    `json:"n"`
	Prev  string    `json:"prev,omitempty"`
	Time  time.Time `json:"time"`
	// Node is the operator that keeps the record (us).
	Node string `json:"node"`
	Kind string `json:"kind"`
	// Peer: for KindSent the peer the copy went to; for KindAction the
	// operator whose step it is.
	Peer string `json:"peer"`

	// The signal: its id, source, type and subject.
	Signal  string `json:"signal"`
	Source  string `json:"source,omitempty"`
	Type    string `json:"type,omitempty"`
	Subject string `json:"subject,omitempty"`

	// KindSent: Digest is "sha256:" and the hex SHA-256 of the link
	// message's body as it went on the link (after redaction and
	// signing again), Size its length; Redacted the JSON pointers
	// export.redact removed from its data; Rule the export policy's rule
	// that let it go.
	Digest   string   `json:"digest,omitempty"`
	Size     int      `json:"size,omitempty"`
	Redacted []string `json:"redacted,omitempty"`
	Rule     string   `json:"rule,omitempty"`

	// KindAction: the action, its phase, who decided (the operator's
	// policy, a person's name, the proposer) and why.
	Action    string `json:"action,omitempty"`
	Phase     string `json:"phase,omitempty"`
	DecidedBy string `json:"decided_by,omitempty"`
	Reason    string `json:"reason,omitempty"`

	// Hash is the hex SHA-256 of the record's JSON with Hash empty.
	Hash string `json:"hash"`
}

// Sum is the record's hash: the SHA-256 of its JSON encoding with Hash
// left empty (encoding/json writes a struct's fields in order, so the
// bytes are the same wherever it is computed).
func (r Record) Sum() string {
	r.Hash = ""
	b, _ := json.Marshal(r) // a struct of strings, numbers and a time: never fails
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Digest is how a record names bytes: "sha256:" and their hex SHA-256.
func Digest(b []byte) string {
	h := sha256.Sum256(b)
	var d [len(digestPrefix) + 2*sha256.Size]byte
	copy(d[:], digestPrefix)
	hex.Encode(d[len(digestPrefix):], h[:])
	return string(d[:])
}

const digestPrefix = "sha256:"

// Stored is a record as the stream keeps it.
type Stored struct {
	Record
	// Seq is the stream sequence that holds it.
	Seq uint64 `json:"seq"`
}

// Problem is one break of a chain that Verify found.
type Problem struct {
	Chain string `json:"chain"`
	N     uint64 `json:"n"`
	Seq   uint64 `json:"seq,omitempty"`
	What  string `json:"what"`
}

func (p Problem) String() string {
	if p.Seq != 0 {
		return fmt.Sprintf("chain %s record %d (stream sequence %d): %s", p.Chain, p.N, p.Seq, p.What)
	}
	return fmt.Sprintf("chain %s record %d: %s", p.Chain, p.N, p.What)
}

// Report is what Verify found.
type Report struct {
	Records  int       `json:"records"`
	Chains   int       `json:"chains"`
	Problems []Problem `json:"problems,omitempty"`
	// Truncated lists the chains whose first records are gone: expired
	// at audit.max_age or discarded at the stream's byte bound (they go
	// oldest first), or removed from the start by hand, which looks the
	// same. Not a problem by itself.
	Truncated []string `json:"truncated,omitempty"`
}

// OK reports whether every chain held.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Verify checks every chain in recs (any order): each record's hash is
// its content's, and from the first record kept on, each names the hash
// of the one before it and none is missing. heads, when given, are the
// chains' last numbers as their writers know them: a chain that ends
// before its head lost records at its end. It names every break.
func Verify(recs []Stored, heads map[string]uint64) Report {
	rep := Report{Records: len(recs)}
	byChain := map[string][]Stored{}
	for _, r := range recs {
		byChain[r.Chain] = append(byChain[r.Chain], r)
	}
	chains := make([]string, 0, len(byChain))
	for c := range byChain {
		chains = append(chains, c)
	}
	slices.Sort(chains)
	rep.Chains = len(chains)
	for _, c := range chains {
		rs := byChain[c]
		slices.SortStableFunc(rs, func(a, b Stored) int {
			if a.N != b.N {
				return cmpU(a.N, b.N)
			}
			return cmpU(a.Seq, b.Seq)
		})
		if rs[0].N > 1 {
			rep.Truncated = append(rep.Truncated, fmt.Sprintf("%s (from record %d)", c, rs[0].N))
		}
		for i, r := range rs {
			bad := func(format string, a ...any) {
				rep.Problems = append(rep.Problems, Problem{Chain: c, N: r.N, Seq: r.Seq, What: fmt.Sprintf(format, a...)})
			}
			if sum := r.Sum(); sum != r.Hash {
				bad("its content does not match its hash (altered: hash %s, content %s)", short(r.Hash), short(sum))
			}
			switch {
			case r.N == 1 && r.Prev != "":
				bad("the first record of its chain names a previous hash")
			case i == 0:
			case r.N == rs[i-1].N:
				bad("a second record with this number (sequences %d and %d)", rs[i-1].Seq, r.Seq)
			case r.N != rs[i-1].N+1:
				bad("records %d to %d before it are missing", rs[i-1].N+1, r.N-1)
			case r.Prev != rs[i-1].Hash:
				bad("it names previous hash %s, record %d's is %s", short(r.Prev), rs[i-1].N, short(rs[i-1].Hash))
			}
		}
		if h, ok := heads[c]; ok {
			if last := rs[len(rs)-1].N; last < h {
				rep.Problems = append(rep.Problems, Problem{Chain: c, N: last + 1,
					What: fmt.Sprintf("records %d to %d, which this chain's writer wrote, are missing from its end", last+1, h)})
			}
		}
	}
	return rep
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Text is the report in a few lines.
func (r Report) Text() string {
	var b strings.Builder
	if r.OK() {
		fmt.Fprintf(&b, "audit trail verified: %d record(s) in %d chain(s), every hash and link holds\n", r.Records, r.Chains)
	} else {
		fmt.Fprintf(&b, "audit trail BROKEN: %d problem(s) in %d record(s), %d chain(s)\n", len(r.Problems), r.Records, r.Chains)
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	for _, t := range r.Truncated {
		fmt.Fprintf(&b, "  chain %s: its earlier records are gone (expired at audit.max_age, discarded at the byte bound, or removed from the start)\n", t)
	}
	return b.String()
}
