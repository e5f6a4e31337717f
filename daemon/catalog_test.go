package daemon

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const catalogPath = "../packaging/catalog/serfd.catalog"

// catalogEntry is one "-- ID" block of a journal catalog.
type catalogEntry struct {
	id     string
	line   int
	header map[string]string
	body   []string
}

// parseCatalog reads a catalog in systemd's format: comment lines, then
// blocks of "-- ID", "Key: value" headers, a blank line and the text.
func parseCatalog(t *testing.T, path string) []*catalogEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*catalogEntry
	var cur *catalogEntry
	inHeader := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "-- "):
			cur = &catalogEntry{id: strings.TrimPrefix(line, "-- "), line: n, header: map[string]string{}}
			out = append(out, cur)
			inHeader = true
		case cur == nil:
			if line != "" && !strings.HasPrefix(line, "#") {
				t.Errorf("%s:%d: text before the first entry: %q", path, n, line)
			}
		case inHeader && line == "":
			inHeader = false
		case inHeader:
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Errorf("%s:%d: header line %q is not \"Key: value\"", path, n, line)
				continue
			}
			cur.header[k] = v
		default:
			cur.body = append(cur.body, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// codeMessageIDs returns the string constants of 32 hex digits declared in
// the non-test Go files of dirs, by name.
func codeMessageIDs(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, dir := range dirs {
		for _, f := range parseDir(t, dir) {
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, v := range vs.Values {
						if s, ok := stringLit(v); ok && hex128.MatchString(s) {
							ids[filepath.Base(dir)+"."+vs.Names[i].Name] = s
						}
					}
				}
			}
		}
	}
	return ids
}

// codeStrings returns every string literal in the non-test Go files of dirs.
func codeStrings(t *testing.T, dirs ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, dir := range dirs {
		for _, f := range parseDir(t, dir) {
			ast.Inspect(f, func(n ast.Node) bool {
				if e, ok := n.(ast.Expr); ok {
					if s, ok := stringLit(e); ok {
						out[s] = true
					}
				}
				return true
			})
		}
	}
	return out
}

func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

var (
	hex128     = regexp.MustCompile(`^[0-9a-f]{32}$`)
	substField = regexp.MustCompile(`@([A-Za-z0-9_]+)@`)
)

// TestCatalog checks serfd.catalog against the code: well-formed entries,
// one per MESSAGE_ID constant in daemon and exec, and substitutions that
// name attribute keys the code uses.
func TestCatalog(t *testing.T) {
	entries := parseCatalog(t, catalogPath)
	fields := codeStrings(t, ".", "../exec", "../gossip")
	inCatalog := map[string]bool{}
	for _, e := range entries {
		where := catalogPath + ":" + strconv.Itoa(e.line)
		if !hex128.MatchString(e.id) {
			t.Errorf("%s: ID %q is not 32 lower-case hex digits", where, e.id)
		}
		if inCatalog[e.id] {
			t.Errorf("%s: ID %s appears twice", where, e.id)
		}
		inCatalog[e.id] = true
		for _, k := range []string{"Subject", "Defined-By", "Support", "Documentation"} {
			if e.header[k] == "" {
				t.Errorf("%s: entry %s has no %s:", where, e.id, k)
			}
		}
		if e.header["Defined-By"] != "serfd" {
			t.Errorf("%s: Defined-By = %q; want serfd", where, e.header["Defined-By"])
		}
		if !strings.Contains(e.header["Documentation"], "man:serfd(8)") {
			t.Errorf("%s: Documentation = %q; want man:serfd(8) among them", where, e.header["Documentation"])
		}
		if strings.TrimSpace(strings.Join(e.body, "")) == "" {
			t.Errorf("%s: entry %s has no explanation", where, e.id)
		}
		text := e.header["Subject"] + "\n" + strings.Join(e.body, "\n")
		for _, m := range substField.FindAllStringSubmatch(text, -1) {
			if !fields[m[1]] {
				t.Errorf("%s: entry %s substitutes @%s@, which no record of serfd carries", where, e.id, m[1])
			}
		}
	}

	code := codeMessageIDs(t, ".", "../exec", "../gossip")
	byID := map[string]string{}
	for name, id := range code {
		if other, dup := byID[id]; dup {
			t.Errorf("constants %s and %s share the message ID %s", name, other, id)
		}
		byID[id] = name
		if !inCatalog[id] {
			t.Errorf("%s = %s has no entry in %s", name, id, catalogPath)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(inCatalog)) {
		if _, ok := byID[id]; !ok {
			t.Errorf("%s: entry %s matches no message ID constant in daemon or exec", catalogPath, id)
		}
	}
	if len(code) < 16 {
		t.Errorf("found %d message ID constants in daemon and exec; want at least 16: %v", len(code), code)
	}
}

// TestCatalogJournalctl has journalctl itself compile the catalog into a
// temporary root (no privileges needed) and list it back.
func TestCatalogJournalctl(t *testing.T) {
	if _, err := osexec.LookPath("journalctl"); err != nil {
		t.Skip("journalctl not installed")
	}
	root := t.TempDir()
	dst := filepath.Join(root, "usr/lib/systemd/catalog")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "serfd.catalog"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := osexec.Command("journalctl", "--root="+root, "--update-catalog").CombinedOutput(); err != nil {
		t.Fatalf("journalctl --update-catalog: %v\n%s", err, out)
	}
	out, err := osexec.Command("journalctl", "--root="+root, "--list-catalog").CombinedOutput()
	if err != nil {
		t.Fatalf("journalctl --list-catalog: %v\n%s", err, out)
	}
	listed := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if id, subject, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			listed[id] = subject
		}
	}
	for _, e := range parseCatalog(t, catalogPath) {
		if want := "serfd: " + e.header["Subject"]; listed[e.id] != want {
			t.Errorf("journalctl --list-catalog: %s = %q; want %q", e.id, listed[e.id], want)
		}
	}
}
