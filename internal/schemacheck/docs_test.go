package schemacheck

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/schemas"
)

// docRow is one row of a class's field table in docs/signals.md.
type docRow struct {
	field    string
	required string
}

// classSections parses docs/signals.md: for each heading, the field table
// rows that follow it up to the next heading.
func classSections(t *testing.T) map[string][]docRow {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "signals.md"))
	require.NoError(t, err)
	defer f.Close()
	sections := map[string][]docRow{}
	current := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			current = strings.Trim(strings.TrimLeft(line, "#"), " `")
			if _, dup := sections[current]; !dup {
				sections[current] = nil
			}
			continue
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "\x00"), "|")
		if len(cells) < 5 {
			continue
		}
		sections[current] = append(sections[current], docRow{
			field:    strings.Trim(strings.TrimSpace(cells[1]), "`"),
			required: strings.TrimSpace(cells[3]),
		})
	}
	require.NoError(t, sc.Err())
	return sections
}

// TestDocsMatchSchemas keeps docs/signals.md from drifting: every class has a
// heading, every top-level property of its schema has a row in that class's
// table with the right "required" cell, and no row names a property the
// schema does not have.
func TestDocsMatchSchemas(t *testing.T) {
	sections := classSections(t)
	for _, class := range schemas.Classes {
		t.Run(class, func(t *testing.T) {
			rows, ok := sections[class]
			require.True(t, ok, "docs/signals.md has no heading %q", class)
			require.NotEmpty(t, rows, "docs/signals.md has no field table under %q", class)

			b, err := schemas.FS.ReadFile(schemas.SchemaFile(class))
			require.NoError(t, err)
			var sch struct {
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			}
			require.NoError(t, json.Unmarshal(b, &sch))
			require.NotEmpty(t, sch.Properties)

			documented := map[string]string{}
			for _, r := range rows {
				top := r.field
				if i := strings.IndexAny(top, ".["); i >= 0 {
					top = top[:i]
				} else {
					documented[top] = r.required
				}
				assert.Contains(t, sch.Properties, top, "docs row %q names no property of the %s schema", r.field, class)
			}
			for prop := range sch.Properties {
				req, ok := documented[prop]
				if !assert.True(t, ok, "property %q of the %s schema has no row in docs/signals.md", prop, class) {
					continue
				}
				if slices.Contains(sch.Required, prop) {
					assert.Equal(t, "yes", req, "property %q of %s is required", prop, class)
				} else {
					assert.NotEqual(t, "yes", req, "property %q of %s is optional", prop, class)
				}
			}
		})
	}
}
