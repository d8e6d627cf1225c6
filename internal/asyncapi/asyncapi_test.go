package asyncapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/asyncapi"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// officialSchema compiles the AsyncAPI 3.0.0 JSON Schema from
// @asyncapi/specs (testdata/README.md).
func officialSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/asyncapi-3.0.0.schema.json")
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	const url = "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
	require.NoError(t, c.AddResource(url, doc))
	s, err := c.Compile(url)
	require.NoError(t, err)
	return s
}

func load(t *testing.T, name string) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join("../../examples/policy", name))
	require.NoError(t, err)
	return cfg
}

func unmarshal(t *testing.T, b []byte) map[string]any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return v.(map[string]any)
}

// TestDocumentsValidate: every document written for the example
// federation's links, and for policies at the edges ("*", nothing, lossy
// delivery), is a valid AsyncAPI 3.0.0 document, and its channels are
// exactly the classes the export policy gives the peer.
func TestDocumentsValidate(t *testing.T) {
	schema := officialSchema(t)
	a, b, c := load(t, "op-a.yaml"), load(t, "op-b.yaml"), load(t, "op-c.yaml")
	all := load(t, "op-b.yaml")
	all.Peers[1].Export.Classes = []string{"*"}
	all.Peers[1].Export.Services = []string{"vpn-acme", "core.net"}
	all.Peers[1].Export.Filter = "severitynumber >= 17"
	none := load(t, "op-c.yaml")
	none.Peers[0].Export.Classes = nil
	lossy := load(t, "op-c.yaml")
	lossy.Peers[0].Export.Delivery = config.DeliveryLossy
	tests := []struct {
		name string
		cfg  *config.Config
		peer string
		want []string
	}{
		{"op-a to op-b (redact)", a, "op-b", []string{"congestion", "fault", "maintenance"}},
		{"op-b to op-a (transit)", b, "op-a", []string{"mitigation"}},
		{"op-b to op-c (transit, min_severity, max_rate)", b, "op-c", []string{"congestion", "fault"}},
		{"op-c to op-b", c, "op-b", []string{"mitigation"}},
		{"every class, literal services", all, "op-c", schemas.Classes},
		{"nothing exported", none, "op-b", nil},
		{"lossy", lossy, "op-b", []string{"mitigation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := asyncapi.Document(tt.cfg, tt.peer)
			require.NoError(t, err)
			doc := unmarshal(t, out)
			require.NoError(t, schema.Validate(doc), "%s", out)
			assert.Equal(t, "3.0.0", doc["asyncapi"])
			channels := slices.Sorted(maps.Keys(doc["channels"].(map[string]any)))
			assert.Equal(t, nonNil(slices.Sorted(slices.Values(tt.want))), nonNil(channels))
			msgs := doc["components"].(map[string]any)["messages"].(map[string]any)
			assert.Equal(t, nonNil(slices.Sorted(slices.Values(tt.want))), nonNil(slices.Sorted(maps.Keys(msgs))))
			for _, class := range tt.want {
				ch := doc["channels"].(map[string]any)[class].(map[string]any)
				addr := ch["address"].(string)
				assert.True(t, strings.HasPrefix(addr, "an.link."+tt.cfg.Operator.ID+"."), addr)
				assert.True(t, strings.HasSuffix(addr, "."+class+".{service}.{resource}"), addr)
			}
		})
	}
	_, err := asyncapi.Document(a, "op-z")
	assert.ErrorContains(t, err, "not a peer of op-a")
}

var update = flag.Bool("update", false, "TestExampleDocument: rewrite examples/policy/op-b-to-op-c.asyncapi.json")

// TestExampleDocument keeps the example document in examples/policy true:
// it is what `anfed policy asyncapi --config examples/policy/op-b.yaml
// --peer op-c` writes.
func TestExampleDocument(t *testing.T) {
	const file = "../../examples/policy/op-b-to-op-c.asyncapi.json"
	out, err := asyncapi.Document(load(t, "op-b.yaml"), "op-c")
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(file, out, 0o644))
	}
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, string(b), string(out), "run go test ./internal/asyncapi -run TestExampleDocument -update")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestValidatorRefusesBrokenDocuments shows the official schema really
// checks: a document spoiled in one place each fails.
func TestValidatorRefusesBrokenDocuments(t *testing.T) {
	schema := officialSchema(t)
	out, err := asyncapi.Document(load(t, "op-b.yaml"), "op-c")
	require.NoError(t, err)
	spoil := []struct {
		name string
		edit func(d map[string]any)
	}{
		{"no info", func(d map[string]any) { delete(d, "info") }},
		{"AsyncAPI 2 version", func(d map[string]any) { d["asyncapi"] = "2.6.0" }},
		{"AsyncAPI 2 operation verb", func(d map[string]any) {
			d["operations"].(map[string]any)["receive-fault"].(map[string]any)["action"] = "subscribe"
		}},
		{"operation without channel", func(d map[string]any) {
			delete(d["operations"].(map[string]any)["receive-fault"].(map[string]any), "channel")
		}},
		{"unknown top-level key", func(d map[string]any) { d["topics"] = map[string]any{} }},
		{"server without protocol", func(d map[string]any) {
			delete(d["servers"].(map[string]any)["link"].(map[string]any), "protocol")
		}},
	}
	for _, s := range spoil {
		t.Run(s.name, func(t *testing.T) {
			d := unmarshal(t, out)
			s.edit(d)
			assert.Error(t, schema.Validate(d))
		})
	}
}

// TestPayloadSchemas: each message's payload schema accepts the signals a
// node really puts on the link (catalog examples, signed by their origin,
// with the path the sender adds) and refuses what the peer cannot get.
func TestPayloadSchemas(t *testing.T) {
	cfg := load(t, "op-b.yaml")
	out, err := asyncapi.Document(cfg, "op-c")
	require.NoError(t, err)
	doc := unmarshal(t, out)
	msgs := doc["components"].(map[string]any)["messages"].(map[string]any)
	kp, err := origin.NewSigningKey()
	require.NoError(t, err)
	signer, err := origin.NewSigner(kp)
	require.NoError(t, err)

	for _, class := range []string{"congestion", "fault"} {
		t.Run(class, func(t *testing.T) {
			m := msgs[class].(map[string]any)
			assert.Equal(t, "application/cloudevents+json", m["contentType"])
			p := m["payload"].(map[string]any)
			assert.Equal(t, asyncapi.SchemaFormat, p["schemaFormat"])
			c := jsonschema.NewCompiler()
			c.AssertFormat()
			require.NoError(t, c.AddResource("urn:payload", p["schema"]))
			sch, err := c.Compile("urn:payload")
			require.NoError(t, err)

			files, err := filepath.Glob(filepath.Join("../../schemas/examples", class+".*.json"))
			require.NoError(t, err)
			require.NotEmpty(t, files)
			for _, f := range files {
				body, err := os.ReadFile(f)
				require.NoError(t, err)
				ev, err := signal.DecodeStructured(body)
				require.NoError(t, err)
				// As op-a's node signs it and op-b relays it to op-c.
				ev.Origin, ev.Source = "op-a", "anfed://op-a/assurance"
				require.NoError(t, signer.Sign(ev))
				ev.Path = []string{"op-a", "op-b"}
				got := sch.Validate(decode(t, ev.Encode()))
				if strings.Contains(f, ".valid") {
					assert.NoError(t, got, f)
				} else {
					assert.Error(t, got, f)
				}
			}
		})
	}

	body, err := os.ReadFile("../../schemas/examples/congestion.valid.json")
	require.NoError(t, err)
	good, err := signal.DecodeStructured(body)
	require.NoError(t, err)
	require.NoError(t, signer.Sign(good))
	good.Path = []string{"op-a", "op-b"}
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("urn:payload", msgs["congestion"].(map[string]any)["payload"].(map[string]any)["schema"]))
	sch, err := c.Compile("urn:payload")
	require.NoError(t, err)
	require.NoError(t, sch.Validate(decode(t, good.Encode())))
	tagged := *good
	tagged.Tags = []string{"op-b:transit", "no-export"}
	require.NoError(t, sch.Validate(decode(t, tagged.Encode())), "tags as a sender sets them")
	bad := []struct {
		name string
		edit func(ev *signal.Event)
	}{
		{"path that does not end with the sender", func(ev *signal.Event) { ev.Path = []string{"op-a"} }},
		{"unsigned", func(ev *signal.Event) { ev.DSSEMaterial, ev.SignedExtAttrs = "", "" }},
		{"another class's type", func(ev *signal.Event) { ev.Type = schemas.Type("fault") }},
		{"severity out of range", func(ev *signal.Event) { ev.SeverityNumber = 30 }},
		{"unknown state", func(ev *signal.Event) { ev.State = "flapping" }},
		{"a bad tag", func(ev *signal.Event) { ev.Tags = []string{"Gold Customer"} }},
	}
	for _, b := range bad {
		ev := *good
		b.edit(&ev)
		assert.Error(t, sch.Validate(decode(t, ev.Encode())), b.name)
	}

	// Without transit the origin is fixed: op-c's signals to op-b.
	out, err = asyncapi.Document(load(t, "op-c.yaml"), "op-b")
	require.NoError(t, err)
	mp := unmarshal(t, out)["components"].(map[string]any)["messages"].(map[string]any)["mitigation"].(map[string]any)["payload"].(map[string]any)["schema"]
	props := mp.(map[string]any)["properties"].(map[string]any)
	assert.Equal(t, "op-c", props[signal.AttrOrigin].(map[string]any)["const"])
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	require.NoError(t, d.Decode(&v), "%s", b)
	return v
}
