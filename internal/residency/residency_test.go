package residency

import (
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

func TestGroup(t *testing.T) {
	for sym, want := range map[string]string{
		"runtime.mallocgc":                                              "std runtime",
		"crypto/internal/fips140/aes.encryptBlock":                      "std crypto",
		"vendor/golang.org/x/net/idna.(*Profile).process":               "std vendor",
		"github.com/hashicorp/memberlist.(*Memberlist).probe":           "github.com/hashicorp/memberlist",
		"github.com/zclconf/go-cty/cty/function/stdlib.init":            "github.com/zclconf/go-cty",
		"google.golang.org/protobuf/internal/impl.(*X).Y":               "google.golang.org/protobuf",
		"golang.org/x/net/ipv4.(*Conn).ReadFrom":                        "golang.org/x/net",
		"slices.SortFunc[go.shape.[]github.com/a/b.T,github.com/a/b.T]": "std slices",
		"main.main":            "main",
		"go:string.*":          "go:",
		"type:*strings.Reader": "type:",
	} {
		if got := Group(sym); got != want {
			t.Errorf("Group(%q) = %q; want %q", sym, got, want)
		}
	}
}

// startIdle builds testdata/idle with the extra go build arguments and
// starts it; it returns once the program runs.
func startIdle(t *testing.T, args ...string) *testutil.Proc {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "idle")
	build := exec.Command("go", append(append([]string{"build", "-o", exe}, args...), "./testdata/idle")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/idle: %v\n%s", err, out)
	}
	p := testutil.Start(t, "idle", exec.Command(exe))
	testutil.Poll(t, time.Minute, "idle to print ready", func() (bool, string) {
		return strings.Contains(p.Out.String(), "ready"), p.Out.String()
	})
	return p
}

// TestRead profiles a running Go program, linked at a fixed address and
// as a position-independent executable (as Debian's build is): its runtime
// and its main package are resident, every resident byte is attributed
// once, and the whole is no more than the process's VmRSS.
func TestRead(t *testing.T) {
	t.Run("exe", func(t *testing.T) { testRead(t) })
	t.Run("pie", func(t *testing.T) { testRead(t, "-buildmode=pie") })
}

func testRead(t *testing.T, buildArgs ...string) {
	p := startIdle(t, buildArgs...)
	prof, err := Read(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if prof.Bytes <= 0 || prof.Sections[".text"] <= 0 {
		t.Fatalf("resident %d bytes, %d of .text; want both > 0", prof.Bytes, prof.Sections[".text"])
	}
	for _, pkg := range []string{"std runtime", "main"} {
		if prof.Packages[pkg] <= 0 {
			t.Errorf("no resident bytes of %s, which ran; packages: %v", pkg, prof.Packages)
		}
	}
	var sum float64
	for _, b := range prof.Packages {
		sum += b
	}
	if math.Abs(sum-float64(prof.Bytes)) > 1 {
		t.Errorf("packages sum to %.0f bytes; resident %d", sum, prof.Bytes)
	}
	var secs int64
	for _, b := range prof.Sections {
		secs += b
	}
	if secs != prof.Bytes {
		t.Errorf("sections sum to %d bytes; resident %d", secs, prof.Bytes)
	}
	if rss := testutil.ProcStatusKiB(t, p.Pid(), "VmRSS")[0]; prof.Bytes > int64(rss)*1024 {
		t.Errorf("resident executable %d bytes > VmRSS %d KiB", prof.Bytes, rss)
	}
}

// TestReadStripped: a binary without a symbol table cannot be attributed,
// and the error says so.
func TestReadStripped(t *testing.T) {
	p := startIdle(t, "-ldflags=-s")
	_, err := Read(p.Pid())
	if err == nil || !strings.Contains(err.Error(), "stripped") {
		t.Fatalf("Read of a stripped binary: err = %v; want one that says stripped", err)
	}
}

func TestReadNoProcess(t *testing.T) {
	if _, err := Read(1 << 30); err == nil {
		t.Fatal("Read of a pid that cannot exist: no error")
	}
}
