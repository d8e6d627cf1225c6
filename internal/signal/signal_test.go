package signal_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(ev *signal.Event)
		reason reject.Reason // "" means accepted
		names  string        // what the error text must mention
	}{
		{name: "every field set", edit: func(*signal.Event) {}},
		{name: "datacontenttype absent", edit: func(ev *signal.Event) { ev.DataContentType = "" }},
		{name: "no path", edit: func(ev *signal.Event) { ev.Path = nil }},
		{name: "severitynumber absent", edit: func(ev *signal.Event) { ev.SeverityNumber = 0 }},
		{name: "severitynumber 1", edit: func(ev *signal.Event) { ev.SeverityNumber = 1 }},
		{name: "severitynumber 24", edit: func(ev *signal.Event) { ev.SeverityNumber = 24 }},
		{name: "each state", edit: func(ev *signal.Event) { ev.State = signal.Cleared }},
		{name: "resource with slashes", edit: func(ev *signal.Event) { ev.Subject = "vpn/a/b/c" }},
		{name: "32-char operator id", edit: func(ev *signal.Event) {
			id := "o" + strings.Repeat("-", 31)
			ev.Origin, ev.Source, ev.Path = id, "anfed://"+id+"/p", []string{id}
		}},

		{"missing id", func(ev *signal.Event) { ev.ID = "" }, reject.MissingAttribute, "id"},
		{"missing source", func(ev *signal.Event) { ev.Source = "" }, reject.MissingAttribute, "source"},
		{"missing type", func(ev *signal.Event) { ev.Type = "" }, reject.MissingAttribute, "type"},
		{"missing subject", func(ev *signal.Event) { ev.Subject = "" }, reject.MissingAttribute, "subject"},
		{"missing time", func(ev *signal.Event) { ev.Time = time.Time{} }, reject.MissingAttribute, "time"},
		{"missing anfedorigin", func(ev *signal.Event) { ev.Origin = "" }, reject.MissingAttribute, signal.AttrOrigin},
		{"missing anfedstate", func(ev *signal.Event) { ev.State = "" }, reject.MissingAttribute, signal.AttrState},
		{"missing data", func(ev *signal.Event) { ev.Data = nil }, reject.MissingAttribute, "data"},
		{"bad state", func(ev *signal.Event) { ev.State = "active" }, reject.BadAttribute, signal.AttrState},
		{"state in capitals", func(ev *signal.Event) { ev.State = "RAISED" }, reject.BadAttribute, signal.AttrState},
		{"wrong datacontenttype", func(ev *signal.Event) { ev.DataContentType = "text/plain" }, reject.BadAttribute, "datacontenttype"},
		{"structured content type as datacontenttype", func(ev *signal.Event) { ev.DataContentType = signal.StructuredContentType }, reject.BadAttribute, "datacontenttype"},
		{"subject without /", func(ev *signal.Event) { ev.Subject = "vpn-acme" }, reject.BadAttribute, "subject"},
		{"subject with empty service", func(ev *signal.Event) { ev.Subject = "/ic-paris-1" }, reject.BadAttribute, "subject"},
		{"subject with empty resource", func(ev *signal.Event) { ev.Subject = "vpn-acme/" }, reject.BadAttribute, "subject"},
		{"source not anfed://", func(ev *signal.Event) { ev.Source = "https://op-a/assurance" }, reject.BadAttribute, "source"},
		{"source without producer", func(ev *signal.Event) { ev.Source = "anfed://op-a" }, reject.BadAttribute, "source"},
		{"source with empty producer", func(ev *signal.Event) { ev.Source = "anfed://op-a/" }, reject.BadAttribute, "source"},
		{"source with empty operator", func(ev *signal.Event) { ev.Source = "anfed:///assurance" }, reject.BadAttribute, "source"},
		{"source operator is not anfedorigin", func(ev *signal.Event) { ev.Source = "anfed://op-b/assurance" }, reject.WrongOrigin, signal.AttrOrigin},
		{"invalid origin id", func(ev *signal.Event) {
			ev.Origin, ev.Source = "Op-A", "anfed://Op-A/assurance"
		}, reject.BadAttribute, signal.AttrOrigin},
		{"origin id starting with a digit", func(ev *signal.Event) {
			ev.Origin, ev.Source = "1op", "anfed://1op/assurance"
		}, reject.BadAttribute, signal.AttrOrigin},
		{"origin id of 33 chars", func(ev *signal.Event) {
			id := "o" + strings.Repeat("a", 32)
			ev.Origin, ev.Source = id, "anfed://"+id+"/assurance"
		}, reject.BadAttribute, signal.AttrOrigin},
		{"path element in capitals", func(ev *signal.Event) { ev.Path = []string{"op-a", "OP-B"} }, reject.BadAttribute, signal.AttrPath},
		{"empty path element", func(ev *signal.Event) { ev.Path = []string{"op-a", "", "op-c"} }, reject.BadAttribute, signal.AttrPath},
		{"path element with space", func(ev *signal.Event) { ev.Path = []string{" op-a"} }, reject.BadAttribute, signal.AttrPath},
		{"path element with dot", func(ev *signal.Event) { ev.Path = []string{"op.a"} }, reject.BadAttribute, signal.AttrPath},
		{"no tags", func(ev *signal.Event) { ev.Tags = nil }, "", ""},
		{"32 tags", func(ev *signal.Event) { ev.Tags = manyTags(32) }, "", ""},
		{"33 tags", func(ev *signal.Event) { ev.Tags = manyTags(33) }, reject.BadAttribute, "holds 33 tags: at most 32"},
		{"tag of 64 chars", func(ev *signal.Event) { ev.Tags = []string{strings.Repeat("a", 64)} }, "", ""},
		{"tag of 65 chars", func(ev *signal.Event) { ev.Tags = []string{strings.Repeat("a", 65)} }, reject.BadAttribute, signal.AttrTags},
		{"empty tag", func(ev *signal.Event) { ev.Tags = []string{"a", ""} }, reject.BadAttribute, `element ""`},
		{"tag in capitals", func(ev *signal.Event) { ev.Tags = []string{"No-Export"} }, reject.BadAttribute, "a tag is 1 to 64 characters"},
		{"tag starting with a colon", func(ev *signal.Event) { ev.Tags = []string{":gold"} }, reject.BadAttribute, signal.AttrTags},
		{"tag with space", func(ev *signal.Event) { ev.Tags = []string{"op-a gold"} }, reject.BadAttribute, signal.AttrTags},
		{"tag with comma smuggled", func(ev *signal.Event) { ev.Tags = []string{"a,b"} }, reject.BadAttribute, signal.AttrTags},
		{"tag non-ASCII", func(ev *signal.Event) { ev.Tags = []string{"goldé"} }, reject.BadAttribute, signal.AttrTags},
		{"tag twice", func(ev *signal.Event) { ev.Tags = []string{"op-a:gold", "x", "op-a:gold"} }, reject.BadAttribute, `names "op-a:gold" twice`},
		{"severitynumber 25", func(ev *signal.Event) { ev.SeverityNumber = 25 }, reject.BadAttribute, signal.AttrSeverityNumber},
		{"severitynumber negative", func(ev *signal.Event) { ev.SeverityNumber = -1 }, reject.BadAttribute, signal.AttrSeverityNumber},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := fullEvent()
			tt.edit(ev)
			err := ev.Check()
			if tt.reason == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			var rerr *reject.Error
			require.ErrorAs(t, err, &rerr)
			assert.Equal(t, tt.reason, reject.ReasonOf(err), "%v", err)
			assert.Contains(t, err.Error(), tt.names)
		})
	}
}

func manyTags(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("t%d", i))
	}
	return out
}

func TestTagAccessors(t *testing.T) {
	ev := &signal.Event{Tags: []string{"no-export", "op-a:gold"}}
	assert.True(t, ev.HasTag(signal.TagNoExport))
	assert.False(t, ev.HasTag(signal.TagNoAdvertise))
	assert.False(t, ev.HasTag("op-a"))
	assert.True(t, ev.HasAnyTag([]string{"x", "op-a:gold"}))
	assert.False(t, ev.HasAnyTag(nil))
	for _, ok := range []string{"a", "0", "op-a:gold", "x.y_z-1:2", "no-advertise"} {
		assert.True(t, signal.ValidTag(ok), ok)
	}
	for _, bad := range []string{"", "-a", ".a", "A", "a b", "a,b", "a/b", "a*", strings.Repeat("x", 65)} {
		assert.False(t, signal.ValidTag(bad), bad)
	}
}

func TestEventAccessors(t *testing.T) {
	tests := []struct {
		subject, service, resource string
	}{
		{"vpn-acme/ic-paris-1", "vpn-acme", "ic-paris-1"},
		{"vpn/a/b", "vpn", "a/b"},
		{"noslash", "noslash", ""},
		{"", "", ""},
		{"/r", "", "r"},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			ev := &signal.Event{Subject: tt.subject}
			assert.Equal(t, tt.service, ev.Service())
			assert.Equal(t, tt.resource, ev.Resource())
		})
	}

	ev := fullEvent()
	assert.Equal(t, "anfed://op-a/assurance c1d2e3f4-0001-4a6b-8c9d-1e2f3a4b5c6d", ev.Key())
	assert.True(t, ev.OnPath("op-b"))
	assert.False(t, ev.OnPath("op-d"))
	assert.False(t, ev.OnPath(""))
	assert.Contains(t, ev.String(), ev.Type)
}

// A clone encodes as its original does, and what a sender changes on
// its copy — the path appended to, the tags and the data replaced, an
// extension set — leaves the original as it was, even when the path
// has room to grow in place.
func TestCloneIsACopyASenderMayChange(t *testing.T) {
	ev := fullEvent()
	ev.Path = append(make([]string, 0, 8), ev.Path...) // room to append in place
	want := ev.Encode()
	c := ev.Clone()
	assert.Equal(t, string(want), string(c.Encode()))
	c.Path = append(c.Path, "op-d")
	c.Tags = append(c.Tags, "op-d:silver")
	c.Data = []byte(`{}`)
	c.Extensions["vendorx"] = "changed"
	c.DSSEMaterial = "resigned"
	other := ev.Clone()
	other.Path = append(other.Path, "op-e")
	assert.Equal(t, []string{"op-a", "op-b", "op-c", "op-d"}, c.Path, "two clones do not share an append")
	assert.Equal(t, string(want), string(ev.Encode()), "the original is as it was")
	assert.Nil(t, (&signal.Event{}).Clone().Extensions)
}

func TestSourceOrigin(t *testing.T) {
	tests := []struct {
		source string
		op     string
		ok     bool
	}{
		{"anfed://op-a/assurance", "op-a", true},
		{"anfed://op-a/a/b", "op-a", true},
		{"anfed://op-a", "", false},
		{"anfed://op-a/", "", false},
		{"anfed:///x", "", false},
		{"ANFED://op-a/x", "", false},
		{"https://op-a/x", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			op, ok := signal.SourceOrigin(tt.source)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.op, op)
		})
	}
}

func TestValidOperatorID(t *testing.T) {
	tests := map[string]bool{
		"op-a": true, "a": true, "a1-": true, "o" + strings.Repeat("x", 31): true,
		"": false, "1a": false, "-a": false, "Op": false, "op_a": false, "op.a": false, "op a": false,
		"o" + strings.Repeat("x", 32): false, "opé": false,
	}
	for id, want := range tests {
		t.Run(id, func(t *testing.T) {
			assert.Equal(t, want, signal.ValidOperatorID(id))
		})
	}
}

func TestStateValid(t *testing.T) {
	for _, s := range []signal.State{signal.Raised, signal.Updated, signal.Cleared} {
		assert.True(t, s.Valid(), s)
	}
	for _, s := range []signal.State{"", "Raised", "withdrawn", "raised "} {
		assert.False(t, s.Valid(), s)
	}
}
