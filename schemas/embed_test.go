package schemas

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTypeAndSchemaURI(t *testing.T) {
	assert.Equal(t, "net.anfed.fault.v1", Type("fault"))
	assert.Equal(t, "https://anfed.net/schemas/v1/sla-risk.json", SchemaURI("sla-risk"))
	assert.Equal(t, "intent-report.v1.json", SchemaFile("intent-report"))
}

// IsSchemaURI is SchemaURI(class) == uri.
func TestIsSchemaURI(t *testing.T) {
	for _, class := range slices.Concat(Classes, []string{"", "x", "fault.json"}) {
		for _, uri := range []string{"", SchemaURI(class), SchemaURI("fault"), SchemaURI("sla-risk"),
			SchemaURI(class) + "x", SchemaURI(class)[1:], "https://anfed.net/schemas/v1/" + class + ".jso", "http://anfed.net/schemas/v1/" + class + ".json"} {
			assert.Equal(t, SchemaURI(class) == uri, IsSchemaURI(uri, class), "%q %q", uri, class)
		}
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		in      string
		class   string
		version int
		ok      bool
	}{
		{"net.anfed.fault.v1", "fault", 1, true},
		{"net.anfed.performance-deviation.v1", "performance-deviation", 1, true},
		{"net.anfed.sla-risk.v2", "sla-risk", 2, true},
		{"net.anfed.intent-report.v12", "intent-report", 12, true},
		{"net.anfed.congestoin.v1", "", 0, false},
		{"net.anfed.fault", "", 0, false},
		{"net.anfed.fault.v", "", 0, false},
		{"net.anfed.fault.v0", "", 0, false},
		{"net.anfed.fault.v01", "", 0, false},
		{"net.anfed.fault.v-1", "", 0, false},
		{"net.anfed.fault.v1x", "", 0, false},
		{"net.anfed.fault.v99999999999999999999", "", 0, false},
		{"net.anfed..v1", "", 0, false},
		{"net.anfed.v1", "", 0, false},
		{"org.example.fault.v1", "", 0, false},
		{"NET.ANFED.FAULT.V1", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			class, version, ok := ClassOf(tt.in)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.class, class)
			assert.Equal(t, tt.version, version)
		})
	}
	for _, c := range Classes {
		class, version, ok := ClassOf(Type(c))
		assert.True(t, ok, c)
		assert.Equal(t, c, class)
		assert.Equal(t, 1, version)
	}
}

func TestSchemasEmbedded(t *testing.T) {
	for _, c := range Classes {
		b, err := FS.ReadFile(SchemaFile(c))
		require.NoError(t, err, c)
		var doc struct {
			Schema string `json:"$schema"`
			ID     string `json:"$id"`
		}
		require.NoError(t, json.Unmarshal(b, &doc), c)
		assert.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc.Schema, c)
		assert.Equal(t, SchemaURI(c), doc.ID, c)
	}
}
