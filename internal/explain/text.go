package explain

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints r for people: the signal, the import side when there is
// one, then one block per peer, the rule that decided first.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	s := r.Signal
	sev := "no severity"
	if s.Severity > 0 {
		sev = fmt.Sprintf("severity %d", s.Severity)
	}
	path := "(empty)"
	if len(s.Path) > 0 {
		path = strings.Join(s.Path, ",")
	}
	tags := ""
	if len(s.Tags) > 0 {
		tags = ", tags " + strings.Join(s.Tags, ",")
	}
	fmt.Fprintf(&b, "%s: signal %s: %s %s %s, origin %s, %s, path %s%s\n", r.Node, s.ID, s.Class, s.State, s.Subject, s.Origin, sev, path, tags)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	if im := r.Import; im != nil {
		writeImport(&b, "", fmt.Sprintf("import from %s", im.From), im)
		if !im.Accept {
			fmt.Fprintf(&b, "%s does not hold the signal: nothing is exported\n", r.Node)
		}
	}
	for _, v := range r.Peers {
		verdict := "sent"
		if !v.Receive {
			verdict = "not sent"
		}
		if v.PeerImport != nil {
			switch {
			case !v.Receive:
			case v.PeerImport.Accept:
				verdict += ", accepted"
			default:
				verdict += ", refused"
			}
		}
		fmt.Fprintf(&b, "export to %s: %s\n", v.Peer, verdict)
		fmt.Fprintf(&b, "  rule:     %s\n", v.Rule)
		if !v.Receive && v.NATS == nil {
			continue
		}
		fmt.Fprintf(&b, "  delivery: %s\n", v.Delivery)
		if v.Subject != "" {
			fmt.Fprintf(&b, "  subject:  %s\n", v.Subject)
		}
		if len(v.Redacted) > 0 {
			fmt.Fprintf(&b, "  redact:   %s removed\n", strings.Join(v.Redacted, ", "))
		}
		if len(v.Tags) > 0 {
			fmt.Fprintf(&b, "  tags:     %s\n", strings.Join(v.Tags, ","))
		}
		if v.Pacing != "" {
			fmt.Fprintf(&b, "  pacing:   %s\n", v.Pacing)
		}
		if v.NATS != nil {
			fmt.Fprintf(&b, "  nats:     %s\n", natsText(v.NATS))
		}
		for _, n := range v.Notes {
			fmt.Fprintf(&b, "  note:     %s\n", n)
		}
		if v.PeerImport != nil {
			writeImport(&b, "  ", fmt.Sprintf("at %s, import from %s", v.Peer, v.PeerImport.From), v.PeerImport)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeImport(b *strings.Builder, indent, title string, im *Import) {
	verdict := "accepted"
	if !im.Accept {
		verdict = "refused"
		if im.Reason != "" {
			verdict += " (" + im.Reason + ")"
		}
	}
	fmt.Fprintf(b, "%s%s: %s\n", indent, title, verdict)
	if !im.Accept {
		fmt.Fprintf(b, "%s  rule:     %s\n", indent, im.Rule)
	}
	if im.NATS.Subject != "" {
		fmt.Fprintf(b, "%s  nats:     %s\n", indent, natsText(&im.NATS))
	}
	for _, s := range im.Steps {
		mark := "ok"
		if !s.OK {
			mark = "NO"
		}
		fmt.Fprintf(b, "%s  %-8s  %s: %s\n", indent, mark, s.Check, s.Detail)
	}
	for _, n := range im.Notes {
		fmt.Fprintf(b, "%s  note:     %s\n", indent, n)
	}
}

func natsText(n *NATS) string {
	switch {
	case n.Allowed == nil:
		return "not known here: " + n.Detail
	case *n.Allowed:
		return "allowed: " + n.Detail
	}
	return "denied: " + n.Detail
}
