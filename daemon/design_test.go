package daemon

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/serfd/serfd"

// scanModule maps each package directory of the module (relative, "." for
// the root) to the set of packages its non-test files import, and records
// each package's doc comment.
func scanModule(t *testing.T) (imports map[string]map[string]bool, docs map[string]string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	imports, docs = map[string]map[string]bool{}, map[string]string{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); path != root && err == nil {
				return filepath.SkipDir // a module of its own (internal/serfclient)
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		if imports[rel] == nil {
			imports[rel] = map[string]bool{}
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			imports[rel][p] = true
		}
		if f.Doc != nil {
			docs[rel] += f.Doc.Text()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan module: %v", err)
	}
	return imports, docs
}

// TestImportDirection enforces the layout README.md (Layout) and
// docs/architecture.md describe: daemon -> gossip, exec, ctl;
// ctl/serfctl -> ctl; the leaves import no project package; only daemon
// imports go-systemd, hcl and the metrics libraries (client_golang,
// go-metrics), only gossip memberlist, only exec fsnotify and os/exec. internal/testutil, the tests' shared helpers, imports no
// project package and is imported by _test.go files only (the scan reads
// no test file, so any import of it it finds is an error); it may start
// processes with os/exec.
func TestImportDirection(t *testing.T) {
	imports, _ := scanModule(t)
	allowedProject := map[string][]string{
		"daemon":       {"gossip", "exec", "ctl"},
		"daemon/serfd": {"daemon"},
		"ctl/serfctl":  {"ctl"},
		"ctl":          nil,
		"gossip":       nil,
		"exec":         nil,
		// Imported by no package's non-test files.
		"internal/testutil": nil,
		// The soak suite's programs (README "Soak suite") measure serfd
		// from outside, through the control protocol only.
		"internal/soak":          {"ctl"},
		"internal/soak/cmd/soak": {"ctl", "internal/soak"},
		// The gossip simulation (README "Benchmarks") runs gossip over an
		// in-memory memberlist transport.
		"internal/sim": {"gossip"},
		// make bench's renderer: reads the benchmark's results file.
		"internal/benchplot":    {"internal/benchresults", "internal/sim"},
		"internal/benchresults": nil,
		"internal/sim/cmd/sim":  {"internal/sim"},
		// make bench's memory report: reads /proc and ELF files only.
		"internal/residency": nil,
	}
	owners := map[string][]string{
		"github.com/coreos/go-systemd":    {"daemon"},
		"github.com/hashicorp/hcl":        {"daemon"},
		"github.com/hashicorp/memberlist": {"gossip", "internal/sim"},
		"github.com/fsnotify/fsnotify":    {"exec"},
		// Metrics are the daemon's: the leaves count in their Stats.
		"github.com/prometheus/client_golang": {"daemon"},
		"github.com/hashicorp/go-metrics":     {"daemon"},
		"os/exec":                             {"exec", "internal/testutil"},
	}
	for _, want := range []string{"daemon", "daemon/serfd", "ctl", "ctl/serfctl", "gossip", "exec", "internal/testutil"} {
		if _, ok := imports[want]; !ok {
			t.Errorf("package %s is missing", want)
		}
	}
	for pkg, ims := range imports {
		allowed, known := allowedProject[pkg]
		if !known {
			t.Errorf("package %s is not in the layout README.md describes", pkg)
			continue
		}
		for im := range ims {
			if rest, ok := strings.CutPrefix(im, module+"/"); ok {
				if !slices.Contains(allowed, rest) {
					t.Errorf("%s imports %s; the layout allows %v", pkg, im, allowed)
				}
				continue
			}
			if im == module {
				t.Errorf("%s imports the module root", pkg)
			}
			for prefix, owner := range owners {
				if (im == prefix || strings.HasPrefix(im, prefix+"/")) && !slices.Contains(owner, pkg) {
					t.Errorf("%s imports %s; only %s may", pkg, im, strings.Join(owner, " and "))
				}
			}
			// Serf's RPC client needs its codec, the one the server uses.
			if pkg == "ctl" && strings.Contains(strings.SplitN(im, "/", 2)[0], ".") && !strings.HasPrefix(im, "github.com/hashicorp/go-msgpack/") {
				t.Errorf("ctl imports %s; ctl is the standard library and go-msgpack only", im)
			}
		}
	}
}

// TestPackageDocs enforces the rule README.md and docs/architecture.md state:
// every package opens with a doc comment that says what it is.
func TestPackageDocs(t *testing.T) {
	imports, docs := scanModule(t)
	var pkgs []string
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		doc := strings.TrimSpace(docs[p])
		if len(doc) < 40 {
			t.Errorf("package %s doc = %q; want a doc comment stating its room and contract", p, doc)
			continue
		}
		if !strings.HasPrefix(doc, "Package ") && !strings.HasPrefix(doc, "Command ") {
			t.Errorf("package %s doc starts %q; want \"Package NAME ...\" or \"Command NAME ...\"", p, doc[:20])
		}
	}
}
