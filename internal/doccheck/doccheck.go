// Package doccheck is a test helper: it fails a test for every exported
// identifier of a package that has no doc comment.
package doccheck

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Check parses the non-test Go files in dir and reports, through t, every
// exported type, function, method, constant and variable without a doc
// comment. It is safe to call from parallel tests.
func Check(t testing.TB, dir string) {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	{
		d, err := doc.NewFromFiles(fset, files, "x")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(d.Doc) == "" {
			t.Errorf("package %s has no package doc", d.Name)
		}
		check := func(kind, name, text string) {
			if ast.IsExported(name) && strings.TrimSpace(text) == "" {
				t.Errorf("%s: exported %s %s has no doc comment", d.Name, kind, name)
			}
		}
		values := func(vs []*doc.Value) {
			for _, v := range vs {
				for _, n := range v.Names {
					if v.Doc == "" {
						check("value", n, specDoc(v.Decl, n))
					}
				}
			}
		}
		values(d.Consts)
		values(d.Vars)
		for _, f := range d.Funcs {
			check("func", f.Name, f.Doc)
		}
		for _, ty := range d.Types {
			check("type", ty.Name, ty.Doc)
			values(ty.Consts)
			values(ty.Vars)
			for _, f := range ty.Funcs {
				check("func", f.Name, f.Doc)
			}
			for _, m := range ty.Methods {
				check("method", ty.Name+"."+m.Name, m.Doc)
			}
		}
	}
}

// specDoc returns the doc (or line comment) of name's spec in a grouped decl.
func specDoc(decl *ast.GenDecl, name string) string {
	for _, s := range decl.Specs {
		vs, ok := s.(*ast.ValueSpec)
		if !ok {
			continue
		}
		for _, n := range vs.Names {
			if n.Name == name {
				if vs.Doc != nil {
					return vs.Doc.Text()
				}
				if vs.Comment != nil {
					return vs.Comment.Text()
				}
			}
		}
	}
	return ""
}
