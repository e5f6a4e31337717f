package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// bin holds the paths of the serfd and serfctl binaries built for this run.
var bin struct {
	serfd, serfctl string
}

func TestMain(m *testing.M) {
	// The binaries are built with -race: without this each would sleep a
	// second at exit (testutil.Start and Run set it too).
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	dir, err := os.MkdirTemp("", "serfd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Tests run serfctl as an unprivileged user too.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.serfd = filepath.Join(dir, "serfd")
	bin.serfctl = filepath.Join(dir, "serfctl")
	for pkg, out := range map[string]string{".": bin.serfd, "../../ctl/serfctl": bin.serfctl} {
		cmd := osexec.Command("go", "build", "-race", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one serfd process under test.
type node struct {
	name    string
	dir     string
	addr    string
	socket  string
	memFile string
	proc    *testutil.Proc
}

const memresponseHandler = `#!/bin/sh
if [ "$SERF_USER_EVENT" = "memresponse" ]; then
	cat >> %s
fi
`

// startNode writes a config for a node on ip and starts serfd; extra is
// appended to the config. The process is killed by PID at cleanup.
func startNode(t *testing.T, name, ip string, extra string) *node {
	t.Helper()
	return startNodeWithSocket(t, name, ip, "", extra)
}

// startNodeWithSocket is startNode with the control socket at socket
// ("" = in the node's directory).
func startNodeWithSocket(t testing.TB, name, ip, socket string, extra ...string) *node {
	t.Helper()
	dir := testutil.ShortTempDir(t, "sd-")
	if socket == "" {
		socket = filepath.Join(dir, "ctl.sock")
	}
	n := &node{name: name, dir: dir, socket: socket, memFile: filepath.Join(dir, "mem.txt")}
	n.addr = net.JoinHostPort(ip, fmt.Sprint(testutil.FreePort(t, ip)))
	hdir := filepath.Join(dir, "handlers.d")
	if err := os.Mkdir(hdir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(memresponseHandler, n.memFile)
	if err := os.WriteFile(filepath.Join(hdir, "memresponse"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// Profile "local" (fast failure detection) unless the caller sets one.
	profile := "profile = \"local\"\n"
	for _, e := range extra {
		if strings.HasPrefix(strings.TrimSpace(e), "profile") {
			profile = ""
		}
	}
	cfg := fmt.Sprintf(`node_name = %q
bind = %q
%scontrol { socket = %q }
handlers {
  dir = %q
  timeout = "10s"
}
log { level = "debug" }
%s`, name, n.addr, profile, n.socket, hdir, strings.Join(extra, "\n"))
	cfgPath := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n.launch(t)
	return n
}

// launch starts serfd on the node's config.hcl (killed by PID at cleanup)
// and waits for its control socket. A node whose serfd exited may be
// launched again, on the same state.
func (n *node) launch(t testing.TB) {
	t.Helper()
	cmd := osexec.Command(bin.serfd, "-config", filepath.Join(n.dir, "config.hcl"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	n.proc = testutil.Start(t, "serfd "+n.name, cmd)
	waitAccepting(t, 20*time.Second, "unix", n.socket, n.name+"'s control socket")
}

// waitAccepting polls until a listener at network addr accepts a
// connection (a daemon's socket is up).
func waitAccepting(tb testing.TB, timeout time.Duration, network, addr, what string) {
	tb.Helper()
	testutil.Poll(tb, timeout, what, func() (bool, string) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

// ctl runs serfctl against the node and returns stdout, stderr and the exit code.
func (n *node) ctl(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	return testutil.Run(t, osexec.Command(bin.serfctl, append([]string{"-socket", n.socket}, args...)...))
}

type member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Port   int               `json:"port"`
	Tags   map[string]string `json:"tags"`
	Status string            `json:"status"`
}

func (n *node) members(t testing.TB) (map[string]member, string) {
	t.Helper()
	out, errOut, code := n.ctl(t, "-format", "json", "members")
	if code != 0 {
		return nil, fmt.Sprintf("serfctl members exit %d: %s", code, errOut)
	}
	return decodeMembers(out)
}

// decodeMembers decodes the JSON member list serfctl and stock serf print,
// by name; on failure the map is nil and the string says why.
func decodeMembers(out string) (map[string]member, string) {
	var resp struct{ Members []member }
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Sprintf("decode %q: %v", out, err)
	}
	ms := map[string]member{}
	for _, m := range resp.Members {
		ms[m.Name] = m
	}
	return ms, out
}

// statusIs waits until n sees every named member with the given status.
func (n *node) waitStatus(t *testing.T, timeout time.Duration, status string, names ...string) {
	t.Helper()
	testutil.Poll(t, timeout, fmt.Sprintf("%s to see %v %s", n.name, names, status), func() (bool, string) {
		ms, state := n.members(t)
		if ms == nil {
			return false, state
		}
		for _, name := range names {
			if ms[name].Status != status {
				return false, state
			}
		}
		return true, state
	})
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestClusterWalkthrough is the reference walkthrough on three real serfd
// processes on loopback: join, members, a user event reaching the handler
// on every node, then kill -9 seen as failed and SIGTERM seen as left.
func TestClusterWalkthrough(t *testing.T) {
	n1 := startNode(t, "n1", "127.0.0.11", "")
	join := fmt.Sprintf("join = [%q]\n", n1.addr)
	n2 := startNode(t, "n2", "127.0.0.12", join)
	n3 := startNode(t, "n3", "127.0.0.13", "")
	nodes := []*node{n1, n2, n3}
	if out, errOut, code := n3.ctl(t, "join", n1.addr); code != 0 || !strings.Contains(out, "1 node") {
		t.Fatalf("serfctl join %s = %q %q exit %d; want exit 0 and 1 node contacted", n1.addr, out, errOut, code)
	}

	for _, n := range nodes {
		n.waitStatus(t, 30*time.Second, "alive", "n1", "n2", "n3")
	}
	out, _, code := n1.ctl(t, "members")
	if code != 0 || strings.Count(out, "alive") != 3 {
		t.Errorf("serfctl members (text) = %q, exit %d; want 3 alive lines", out, code)
	}

	out, errOut, code := n1.ctl(t, "event", "memresponse", "xcxx")
	if code != 0 {
		t.Fatalf("serfctl event memresponse xcxx = exit %d, %q %q; want exit 0", code, out, errOut)
	}
	for _, n := range nodes {
		testutil.Poll(t, 20*time.Second, n.name+"'s handler to write xcxx", func() (bool, string) {
			got := readFile(n.memFile)
			return got == "xcxx\n", fmt.Sprintf("%q", got)
		})
	}

	// kill -9: the others see n3 failed.
	if err := n3.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n1.waitStatus(t, 30*time.Second, "failed", "n3")
	n2.waitStatus(t, 30*time.Second, "failed", "n3")

	// SIGTERM: a graceful leave, exit 0, seen as left.
	if err := n2.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n1.waitStatus(t, 30*time.Second, "left", "n2")
	select {
	case <-n2.proc.Exited():
		if n2.proc.Err() != nil {
			t.Errorf("serfd n2 after SIGTERM exited with %v; want exit 0", n2.proc.Err())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("serfd n2 did not exit within 30s of SIGTERM")
	}

	// serfctl leave: a graceful leave, then serfd exits 0.
	if out, errOut, code := n1.ctl(t, "leave"); code != 0 {
		t.Errorf("serfctl leave = %q %q exit %d; want exit 0", out, errOut, code)
	}
	select {
	case <-n1.proc.Exited():
		if n1.proc.Err() != nil {
			t.Errorf("serfd n1 after serfctl leave exited with %v; want exit 0", n1.proc.Err())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("serfd n1 did not exit within 30s of serfctl leave")
	}
}

func TestSerfctlErrors(t *testing.T) {
	missing := &node{socket: filepath.Join(t.TempDir(), "none.sock")}
	_, errOut, code := missing.ctl(t, "members")
	want := "serfd is not running (no socket at " + missing.socket + "): start it with `systemctl start serfd`"
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("serfctl members (no daemon) = %q exit %d; want exit 1 and %q", errOut, code, want)
	}
	for _, args := range [][]string{{"bogus"}, {}, {"event"}, {"-format", "yaml", "members"}, {"join"}} {
		if _, _, code := missing.ctl(t, args...); code != 2 {
			t.Errorf("serfctl %v = exit %d; want 2 (bad usage)", args, code)
		}
	}
}

func TestSerfctlPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run serfctl as another user")
	}
	n := startNode(t, "p1", "127.0.0.21", "")
	// The node's directory must be searchable by the unprivileged user;
	// the socket itself stays 0660 root:root.
	if err := os.Chmod(n.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(bin.serfctl, "-socket", n.socket, "members")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	want := "permission denied on " + n.socket + ": the socket belongs to group \"root\""
	if ee, ok := err.(*osexec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(errb.String(), want) {
		t.Errorf("serfctl members as nobody = %v, %q; want exit 1 and %q", err, errb.String(), want)
	}
}

func TestCheckReportsBadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte("node_name = \"x\"\nbogus_key = 1\nhandlers { timeout = \"soon\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(bin.serfd, "-check", "-config", path)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*osexec.ExitError); !ok || ee.ExitCode() != 78 {
		t.Fatalf("serfd -check (bad config) = %v; want exit 78 (EX_CONFIG)", err)
	}
	for _, want := range []string{path + ":2,1: Unsupported argument", path + ":3,12: timeout \"soon\" is not a duration"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("serfd -check output = %q; want it to contain %q", out, want)
		}
	}

	good := filepath.Join(dir, "good.hcl")
	if err := os.WriteFile(good, []byte("node_name = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := osexec.Command(bin.serfd, "-check", "-config", good).CombinedOutput(); err != nil {
		t.Errorf("serfd -check (good config) = %v, %q; want exit 0", err, out)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.hcl")
	if err := os.WriteFile(path, []byte("profile = \"moon\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := osexec.Command(bin.serfd, "-config", path).CombinedOutput()
	if ee, ok := err.(*osexec.ExitError); !ok || ee.ExitCode() != 78 {
		t.Fatalf("serfd (bad config) = %v; want exit 78 (EX_CONFIG)", err)
	}
	if want := path + ":1,1: profile \"moon\""; !strings.Contains(string(out), want) {
		t.Errorf("serfd (bad config) output = %q; want %q", out, want)
	}
}

// A second serfd whose snapshot (and so its run spool) sits in the state
// directory of a running one refuses to start, naming the directory,
// rather than write into the first one's files; once the first is gone
// the directory is free again.
func TestSharedStateDirRefused(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	first := startNodeWithSocket(t, "lock-1", "127.0.0.73", "", fmt.Sprintf("snapshot_path = %q", filepath.Join(state, "one.snap")))
	dir := testutil.ShortTempDir(t, "sd-")
	cfg := fmt.Sprintf("node_name = \"lock-2\"\nbind = \"127.0.0.74:0\"\ncontrol { socket = %q }\nhandlers { dir = %q }\nsnapshot_path = %q\n",
		filepath.Join(dir, "ctl.sock"), dir, filepath.Join(state, "two.snap"))
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := testutil.Run(t, osexec.Command(bin.serfd, "-config", path))
	if want := "state directory " + state + " is in use by another serfd"; code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("a second serfd on the same state directory = exit %d, %q; want a failure naming %q", code, errOut, want)
	}
	first.proc.Kill()
	second := &node{name: "lock-2", dir: dir, socket: filepath.Join(dir, "ctl.sock")}
	second.launch(t) // the lock went with the first process
}

// TestControlSocketTakeover checks that a stale socket file is replaced,
// while a socket another serfd serves, or a file that is not a socket, is
// left alone with an error naming it.
func TestControlSocketTakeover(t *testing.T) {
	n := startNode(t, "s1", "127.0.0.31", "")
	if _, _, code := n.ctl(t, "members"); code != 0 {
		t.Fatalf("serfctl members = exit %d; want 0", code)
	}

	// A second serfd on the same socket must refuse and leave it working.
	cfg := filepath.Join(n.dir, "second.hcl")
	body := fmt.Sprintf("node_name = \"s2\"\nbind = \"127.0.0.32:%d\"\ncontrol { socket = %q }\n", testutil.FreePort(t, "127.0.0.32"), n.socket)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := osexec.Command(bin.serfd, "-config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another serfd is serving it") {
		t.Errorf("second serfd on %s = %v, %q; want an error saying another serfd serves it", n.socket, err, out)
	}
	if _, _, code := n.ctl(t, "members"); code != 0 {
		t.Errorf("serfctl members after the second serfd = exit %d; want 0", code)
	}

	// A file that is not a socket is never removed.
	plain := filepath.Join(n.dir, "plain")
	if err := os.WriteFile(plain, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	body = fmt.Sprintf("node_name = \"s3\"\nbind = \"127.0.0.33:%d\"\ncontrol { socket = %q }\n", testutil.FreePort(t, "127.0.0.33"), plain)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = osexec.Command(bin.serfd, "-config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a socket") || readFile(plain) != "keep me" {
		t.Errorf("serfd with a regular file at the socket path = %v, %q; want an error and the file kept", err, out)
	}

	// A stale socket (nobody listening) is replaced.
	stale := filepath.Join(n.dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	s4 := startNodeWithSocket(t, "s4", "127.0.0.34", stale)
	if _, errOut, code := s4.ctl(t, "members"); code != 0 {
		t.Errorf("serfctl members on a node that replaced a stale socket = exit %d %q; want 0", code, errOut)
	}
}

// A serfd that loses a name conflict exits 78 (EX_CONFIG), like a bad
// configuration, so that systemd does not restart it into the same
// conflict (RestartPreventExitStatus=78).
func TestNameConflictExitsConfig(t *testing.T) {
	a := startNode(t, "nc-a", "127.0.0.93", "")
	b := startNode(t, "nc-b", "127.0.0.94", fmt.Sprintf("join = [%q]", a.addr))
	a.waitStatus(t, 30*time.Second, "alive", "nc-a", "nc-b")
	imp := startNode(t, "nc-b", "127.0.0.95", fmt.Sprintf("join = [%q]", a.addr))
	select {
	case <-imp.proc.Exited():
	case <-time.After(60 * time.Second):
		t.Fatalf("the second node named nc-b did not exit\n%s", imp.proc.Out.String())
	}
	var ee *osexec.ExitError
	if !errors.As(imp.proc.Err(), &ee) || ee.ExitCode() != 78 || !strings.Contains(imp.proc.Out.String(), "unique node_name") {
		t.Errorf("impostor exit = %v; want exit status 78 and advice to set a unique node_name\n%s", imp.proc.Err(), imp.proc.Out.String())
	}
	if _, _, code := b.ctl(t, "members"); code != 0 {
		t.Errorf("the first nc-b stopped serving after the conflict")
	}
}
