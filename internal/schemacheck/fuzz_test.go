package schemacheck

import (
	"errors"
	"testing"

	"github.com/anfed/anfed/schemas"
)

// FuzzValidate feeds arbitrary types and data to Validate: it must never
// panic and must answer nil, ErrUnknownType or a *DataError.
func FuzzValidate(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.typ(), []byte(ex.data()))
	}
	f.Add("net.anfed.congestoin.v1", []byte(`{}`))
	f.Add(schemas.Type("fault"), []byte(`{"alarmType":`))
	f.Add(schemas.Type("fault"), []byte(`[[[[[[[[[[]]]]]]]]]]`))
	f.Add(schemas.Type("congestion"), []byte(`{"utilisationPercent": 1e99999999}`))
	f.Add(schemas.Type("capacity"), []byte(`{"total": -1E-99999999, "available": 1e308}`))
	f.Add(schemas.Type("mitigation"), []byte(`{"respondsTo":[{"source":"anfed://a/b","id":"\u0000"}]}`))
	c := loadCatalog(f)
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		err := c.Validate(typ, data)
		if err == nil {
			return
		}
		if errors.Is(err, ErrUnknownType) {
			if _, _, ok := schemas.ClassOf(typ); ok && typ == schemas.Type(mustClass(typ)) {
				t.Fatalf("known type %q reported unknown", typ)
			}
			return
		}
		var derr *DataError
		if !errors.As(err, &derr) {
			t.Fatalf("Validate(%q) returned %T %v, want *DataError or ErrUnknownType", typ, err, err)
		}
		if derr.Type != typ || derr.Message == "" || (derr.Pointer != "" && derr.Pointer[0] != '/') {
			t.Fatalf("bad DataError %#v", derr)
		}
		_ = err.Error()
	})
}

func mustClass(typ string) string {
	class, _, _ := schemas.ClassOf(typ)
	return class
}
