package gen

import (
	"bytes"
	"testing"
)

// FuzzParseCatalog feeds arbitrary documents to ParseCatalog: it must
// not panic, and a catalog it accepts must generate in every language and
// read back as itself.
func FuzzParseCatalog(f *testing.F) {
	f.Add([]byte(`{"format":"ferry.services","version":1,"tunnel_path":"/tunnel","services":[{"name":"a-b","framing":"lines","max_message":10}]}`))
	f.Add([]byte(`{"format":"ferry.services","version":1,"tunnel_path":"/t","services":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCatalog(data)
		if err != nil {
			return
		}
		for _, lang := range Languages {
			if _, err := Generate(c, Options{Lang: lang, Package: "sdk"}); err != nil {
				t.Fatalf("%s: %v", lang, err)
			}
		}
		back, err := ParseCatalog(c.JSON())
		if err != nil {
			t.Fatalf("the catalog's own JSON does not parse: %v", err)
		}
		if !bytes.Equal(back.JSON(), c.JSON()) {
			t.Fatal("the catalog changed on a round trip")
		}
	})
}
