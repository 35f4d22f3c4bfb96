package smtpclient

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The wire client has no policy and knows nothing of the relayer: it
// imports neither the packages that decide (batch, spool, mx, deliver)
// nor go-smtp, whose client it replaces.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"github.com/emersion/go-smtp", "github.com/mxflush/mxflush/batch",
		"github.com/mxflush/mxflush/spool", "github.com/mxflush/mxflush/mx", "github.com/mxflush/mxflush/deliver"}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
