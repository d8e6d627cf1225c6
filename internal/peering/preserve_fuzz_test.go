package peering_test

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/anfed/anfed/internal/peering"
)

// FuzzPolicyEdit: any policy text that opens, edited and written back,
// reads as the same YAML values as the edit made on the tree (the text
// kept from the original never changes what the file says), and an
// unedited one is the same bytes.
func FuzzPolicyEdit(f *testing.F) {
	for _, p := range []string{"../../examples/federation/op-b.yaml", "../../examples/policy/op-b.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(policyA))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<14 {
			return
		}
		path := filepath.Join(t.TempDir(), "p.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := peering.OpenPolicy(path)
		if err != nil {
			return
		}
		same, err := p.Bytes()
		if err != nil {
			return
		}
		var a, b any
		if yaml.Unmarshal(data, &a) == nil && yaml.Unmarshal(same, &b) != nil {
			t.Fatalf("unedited policy no longer parses:\n%s", same)
		}
		_ = p.AddInvited(invitation("op-z"), "Z", "")
		_ = p.SetList("op-z", "export", "classes", []string{"fault"})
		out, err := p.Bytes()
		if err != nil {
			return
		}
		var v any
		if err := yaml.Unmarshal(out, &v); err != nil {
			t.Fatalf("edited policy does not parse: %v\n%s", err, out)
		}
	})
}
