package subject_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/subject"
)

// awkward are service and resource names that must never add a token or a
// wildcard to a subject.
var awkward = []string{
	"vpn-acme", "ic-paris-1", "a.b.c", ".", "..", "with space", " lead", "trail\t",
	"*", ">", "a.>", "*.*", "100%", "%41", "%", "%%", "a/b/c", "/", "$SYS", "é", "日本", "\x00\x7f\xff",
	"tab\tnl\nr\r", "A-Z_~:@+=,#!&()[]'", `quote"back\slash`,
}

func TestTokenUntoken(t *testing.T) {
	for _, s := range awkward {
		t.Run(s, func(t *testing.T) {
			tok := subject.Token(s)
			checkToken(t, s, tok)
			got, err := subject.Untoken(tok)
			require.NoError(t, err)
			assert.Equal(t, s, got)
		})
	}
}

func TestTokenEncoding(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"vpn-acme", "vpn-acme"},
		{"a.b", "a%2Eb"},
		{"*", "%2A"},
		{">", "%3E"},
		{"%", "%25"},
		{" ", "%20"},
		{"$", "%24"},
		{"é", "%C3%A9"},
		{"a/b", "a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, subject.Token(tt.in))
		})
	}
}

func TestUntoken(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "", want: ""},
		{in: "plain", want: "plain"},
		{in: "%2E%2E", want: ".."},
		{in: "%2e", wantErr: "uppercase hex"}, // one name, one token
		{in: "%41", wantErr: "written as itself"},
		{in: "a%20b", want: "a b"},
		{in: "%", wantErr: "truncated"},
		{in: "%4", wantErr: "truncated"},
		{in: "ab%4", wantErr: "truncated"},
		{in: "%G1", wantErr: "bad escape"},
		{in: "%1G", wantErr: "bad escape"},
		{in: "%%41", wantErr: "bad escape"},
		{in: "a.b", wantErr: "percent-encoded"},
		{in: "%2E.", wantErr: "percent-encoded"},
		{in: "*", wantErr: "percent-encoded"},
		{in: ">", wantErr: "percent-encoded"},
		{in: "a b", wantErr: "percent-encoded"},
		{in: "é", wantErr: "percent-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := subject.Untoken(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSignalRoundTrip(t *testing.T) {
	for _, svc := range awkward {
		for _, res := range []string{"ic-paris-1", "port et-0/0/3", "a.b>*", "50%"} {
			k := subject.Key{Origin: "op-a", Class: "congestion", Service: svc, Resource: res}
			t.Run(svc+"|"+res, func(t *testing.T) {
				s, err := subject.Signal(k)
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(s, subject.SignalPrefix+".op-a.congestion."), s)
				assert.Len(t, strings.Split(s, "."), 6, s)
				got, err := subject.ParseSignal(s)
				require.NoError(t, err)
				assert.Equal(t, k, got)

				tel, err := subject.TelemetrySignal(k)
				require.NoError(t, err)
				assert.Equal(t, subject.TelemetryPrefix+strings.TrimPrefix(s, subject.SignalPrefix), tel, "the same tokens under an.telsig")
				got, err = subject.ParseSignal(tel)
				require.NoError(t, err)
				assert.Equal(t, k, got)

				l, err := subject.Link("op-b", k)
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(l, subject.LinkPrefix+".op-b.op-a.congestion."), l)
				assert.Len(t, strings.Split(l, "."), 7, l)
				from, got, err := subject.ParseLink(l)
				require.NoError(t, err)
				assert.Equal(t, "op-b", from)
				assert.Equal(t, k, got)
			})
		}
	}
}

func TestParseSignalRefuses(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"too few tokens", "an.sig.op-a.fault.vpn"},
		{"too many tokens", "an.sig.op-a.fault.vpn.r.x"},
		{"wrong prefix", "an.pub.op-a.fault.vpn.r"},
		{"telemetry intake, not checked telemetry", "an.tel.op-a.fault.vpn.r"},
		{"link subject", "an.link.op-a.fault.vpn.r"},
		{"wrong root", "xx.sig.op-a.fault.vpn.r"},
		{"empty origin", "an.sig..fault.vpn.r"},
		{"empty class", "an.sig.op-a..vpn.r"},
		{"empty service", "an.sig.op-a.fault..r"},
		{"empty resource", "an.sig.op-a.fault.vpn."},
		{"bad service escape", "an.sig.op-a.fault.vpn%2.r"},
		{"bad resource escape", "an.sig.op-a.fault.vpn.r%ZZ"},
		{"unescaped byte", "an.sig.op-a.fault.v pn.r"},
		{"wildcard service", "an.sig.op-a.fault.*.r"},
		{"full wildcard resource", "an.sig.op-a.fault.vpn.>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := subject.ParseSignal(tt.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.in)
		})
	}
}

func TestParseLinkRefuses(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"too few tokens", "an.link.op-b.op-a.fault.vpn"},
		{"too many tokens", "an.link.op-b.op-a.fault.vpn.r.x"},
		{"signal subject", "an.sig.op-b.op-a.fault.vpn.r"},
		{"wrong root", "xx.link.op-b.op-a.fault.vpn.r"},
		{"empty origin", "an.link.op-b..fault.vpn.r"},
		{"empty class", "an.link.op-b.op-a..vpn.r"},
		{"empty service", "an.link.op-b.op-a.fault..r"},
		{"empty resource", "an.link.op-b.op-a.fault.vpn."},
		{"bad escape", "an.link.op-b.op-a.fault.%.r"},
		{"wildcard resource", "an.link.op-b.op-a.fault.vpn.*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := subject.ParseLink(tt.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.in)
		})
	}
}

// TestBounds: Signal and Link refuse a key whose service or resource token
// is over MaxToken (percent-encoded: non-ASCII counts three bytes a byte),
// the parsers refuse such subjects, and the longest subject a key within
// the bounds makes stays under MaxSubject and nats-server's 4,096-byte
// control line with room to spare.
func TestBounds(t *testing.T) {
	longest := subject.Key{Origin: strings.Repeat("o", 32), Class: "performance-deviation",
		Service: strings.Repeat("s", subject.MaxToken), Resource: strings.Repeat("r", subject.MaxToken)}
	l, err := subject.Link(strings.Repeat("f", 32), longest)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(l), subject.MaxSubject)
	assert.Equal(t, 2145, len(l), "the longest link subject within MaxToken")
	_, back, err := subject.ParseLink(l)
	require.NoError(t, err)
	assert.Equal(t, longest, back)

	for _, tt := range []struct {
		name string
		key  subject.Key
		want string
	}{
		{"ASCII service one byte over", subject.Key{Origin: "op-a", Class: "fault", Service: strings.Repeat("s", subject.MaxToken+1), Resource: "r"}, "service token is 1025 bytes"},
		{"4 KB resource", subject.Key{Origin: "op-a", Class: "fault", Service: "s", Resource: strings.Repeat("r", 4000)}, "resource token is 4000 bytes"},
		{"700 non-ASCII characters", subject.Key{Origin: "op-a", Class: "fault", Service: "s", Resource: strings.Repeat("é", 700)}, "resource token is 4200 bytes"},
		{"342 escaped bytes", subject.Key{Origin: "op-a", Class: "fault", Service: strings.Repeat(".", 342), Resource: "r"}, "service token is 1026 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := subject.Signal(tt.key)
			require.ErrorIs(t, err, subject.ErrTooLong)
			assert.Contains(t, err.Error(), tt.want)
			_, err = subject.Link("op-b", tt.key)
			require.ErrorIs(t, err, subject.ErrTooLong)
			// A peer can put such a subject on a leaf link (leaf lines
			// may be 64 KiB): the parser refuses it, without echoing it.
			raw := "an.link.op-b." + tt.key.Origin + "." + tt.key.Class + "." + subject.Token(tt.key.Service) + "." + subject.Token(tt.key.Resource)
			_, _, err = subject.ParseLink(raw)
			require.Error(t, err)
			assert.Less(t, len(err.Error()), 400, "the error quotes at most the subject's start")
		})
	}
	// A 64 KiB subject of the wrong shape is not echoed whole either.
	_, err = subject.ParseSignal(strings.Repeat("x", 64<<10))
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 400)
}

func TestFixedSubjects(t *testing.T) {
	assert.Equal(t, "an.link.op-b.>", subject.LinkFrom("op-b"))
	assert.Equal(t, "an.dlq.local.bad-attribute", subject.DLQ("local", "bad-attribute"))
	assert.Equal(t, "an.dlq.op%2Eb.a%20b", subject.DLQ("op.b", "a b"), "DLQ tokens must not add tokens")
	for _, s := range []string{subject.Intake, subject.Signals, subject.Store, subject.TelemetryIntake, subject.Telemetry} {
		assert.True(t, strings.HasSuffix(s, ".>"), s)
	}
	// Checked telemetry lies outside the telemetry intake's wildcard:
	// intake never takes back what it published.
	assert.False(t, strings.HasPrefix(subject.TelemetryPrefix+".", subject.TelemetryIntakePrefix+"."))
	// Probes and advisories lie inside the narrowest permission a peer
	// has on the link: its own signals, an.link.<peer>.<peer>.>.
	assert.Equal(t, "an.link.op-b.op-b.probe", subject.Probe("op-b"))
	assert.Equal(t, "an.link.op-b.op-b.advisory", subject.Advisory("op-b"))
	assert.Equal(t, "an.ack.op-b", subject.Ack("op-b"))
	assert.Equal(t, "an.cond.raised.op-a.fault.vpn%2E1.r%201",
		subject.Cond("raised", subject.Key{Origin: "op-a", Class: "fault", Service: "vpn.1", Resource: "r 1"}), "condition tokens must not add tokens")
}

// checkToken asserts what makes a token safe in a NATS subject.
func checkToken(t *testing.T, s, tok string) {
	t.Helper()
	if s != "" {
		assert.NotEmpty(t, tok, "Token(%q) is empty", s)
	}
	assert.NotContains(t, tok, ".")
	assert.NotContains(t, tok, "*")
	assert.NotContains(t, tok, ">")
	assert.True(t, utf8.ValidString(tok), "Token(%q) = %q is not ASCII", s, tok)
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c <= ' ' || c >= 0x7f {
			t.Errorf("Token(%q) = %q holds byte %#x (whitespace, control or non-ASCII)", s, tok, c)
		}
	}
}

// FuzzToken: Untoken(Token(s)) == s for any s, and Token never yields a
// token that could split a subject or act as a wildcard.
func FuzzToken(f *testing.F) {
	for _, s := range awkward {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := subject.Token(s)
		checkToken(t, s, tok)
		got, err := subject.Untoken(tok)
		require.NoError(t, err)
		assert.Equal(t, s, got)

		// Whatever Untoken accepts, Token maps to a token Untoken reads back
		// to the same string.
		if u, err := subject.Untoken(s); err == nil {
			back, err := subject.Untoken(subject.Token(u))
			require.NoError(t, err)
			assert.Equal(t, u, back)
		}

		// Any service and resource make a subject that parses back.
		k := subject.Key{Origin: "op-a", Class: "fault", Service: s, Resource: s + "/r"}
		if s == "" {
			return
		}
		sig, err := subject.Signal(k)
		if subject.TokenLen(s+"/r") > subject.MaxToken {
			require.ErrorIs(t, err, subject.ErrTooLong)
			return
		}
		require.NoError(t, err)
		got2, err := subject.ParseSignal(sig)
		require.NoError(t, err)
		assert.Equal(t, k, got2)
	})
}

// FuzzParse: any string either fails to parse or yields a key whose
// subject parses back to the same key, with an origin and class that can
// never be wildcards; never a panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"an.sig.op-a.fault.vpn-acme.ic-1", "an.link.op-b.op-a.fault.vpn-acme.ic%2F1",
		"an.sig.*.fault.x.y", "an.sig.op-a.>.x.y", "an.link.>", "an.sig.op-a.fault.%zz.y",
		"an.sig.op-a.fault..y", "an.sig.OP-A.fault.x.y", "", "an.sig",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := subject.ParseSignal(s); err == nil {
			checkKey(t, k)
			sig, err := subject.Signal(k)
			require.NoError(t, err, "a subject that parses is within the bounds")
			back, err := subject.ParseSignal(sig)
			require.NoError(t, err)
			assert.Equal(t, k, back)
		}
		if from, k, err := subject.ParseLink(s); err == nil {
			checkKey(t, k)
			l, err := subject.Link(from, k)
			require.NoError(t, err, "a subject that parses is within the bounds")
			_, back, err := subject.ParseLink(l)
			require.NoError(t, err)
			assert.Equal(t, k, back)
		}
	})
}

func checkKey(t *testing.T, k subject.Key) {
	t.Helper()
	for _, x := range []string{k.Origin, k.Class} {
		require.NotEmpty(t, x)
		assert.NotContains(t, x, "*")
		assert.NotContains(t, x, ">")
		assert.NotContains(t, x, ".")
	}
	assert.NotEmpty(t, k.Service)
	assert.NotEmpty(t, k.Resource)
}

// Parsing a plain subject allocates nothing: every stored signal's
// subject is parsed on the hot path.
func TestParseDoesNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		if _, err := subject.ParseSignal("an.sig.op-a.fault.vpn-acme.ic-paris-1"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := subject.ParseLink("an.link.op-b.op-a.fault.vpn-acme.ic-paris-1"); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, n)
	for _, bad := range []string{"an.sig.a.b.c", "an.sig.a.b.c.d.e", "an.link.x.a.b.c", "an.link.x.a.b.c.d.e"} {
		_, err1 := subject.ParseSignal(bad)
		_, _, err2 := subject.ParseLink(bad)
		assert.True(t, err1 != nil && err2 != nil, bad)
	}
}
