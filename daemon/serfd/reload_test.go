package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

func TestSerfctlReload(t *testing.T) {
	t.Parallel()
	n := startNodeWithSocket(t, "l1", "127.0.0.71", "", `tags = { role = "web", keep = "cfg" }`)
	orig := readFile(n.configPath())
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(n.configPath(), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tagsOf := func() map[string]string {
		ms, state := n.members(t)
		if ms == nil {
			t.Fatalf("members: %s", state)
		}
		return ms["l1"].Tags
	}
	if _, errOut, code := n.ctl(t, "tags", "-set", "runtime=yes"); code != 0 {
		t.Fatalf("serfctl tags -set runtime=yes = %q exit %d", errOut, code)
	}

	// Live changes: tags (the runtime tag survives), log level, handler blocks.
	cfg := strings.Replace(orig, `role = "web"`, `role = "db"`, 1)
	cfg = strings.Replace(cfg, `level = "debug"`, `level = "info"`, 1)
	cfg += "\nhandler \"memresponse\" { timeout = \"5s\" }\n"
	write(cfg)
	out, errOut, code := n.ctl(t, "reload")
	if code != 0 || !strings.Contains(out, "Applied: log.level, handler blocks, tags") || strings.Contains(out, "restart") {
		t.Errorf("serfctl reload = %q %q exit %d; want log.level, handler blocks and tags applied, nothing needing a restart", out, errOut, code)
	}
	if got := tagsOf(); got["role"] != "db" || got["runtime"] != "yes" || got["keep"] != "cfg" {
		t.Errorf("tags after reload = %v; want role=db, runtime=yes (kept), keep=cfg", got)
	}

	// A setting that cannot change live is named, in JSON too.
	write(strings.Replace(cfg, `node_name = "l1"`, `node_name = "l9"`, 1))
	var resp struct {
		Applied      []string `json:"applied"`
		NeedsRestart []string `json:"needs_restart"`
	}
	n.ctlJSON(t, &resp, "reload")
	if len(resp.Applied) != 0 || strings.Join(resp.NeedsRestart, ",") != "node_name" {
		t.Errorf("serfctl -format json reload (node_name changed) = %+v; want nothing applied, node_name needing a restart", resp)
	}

	// A bad configuration changes nothing and every problem is reported.
	write(cfg + "bogus = 1\nquery_size_limit = 1\n")
	_, errOut, code = n.ctl(t, "reload")
	path := n.configPath()
	if code != 1 || !strings.Contains(errOut, path+":") || !strings.Contains(errOut, "Unsupported argument") ||
		!strings.Contains(errOut, ":13,1: query_size_limit = 1 is out of range") || !strings.Contains(errOut, "keeps running the old one") {
		t.Errorf("serfctl reload (bad config) = %q exit %d; want exit 1 and both problems with file:line,col", errOut, code)
	}
	if got := tagsOf(); got["role"] != "db" || got["runtime"] != "yes" {
		t.Errorf("tags after a bad reload = %v; want them unchanged", got)
	}

	// SIGHUP reloads too; a bad one is logged.
	write(strings.Replace(cfg, `role = "db"`, `role = "hup"`, 1))
	if err := n.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, 20*time.Second, "SIGHUP to apply role=hup", func() (bool, string) {
		got := tagsOf()
		return got["role"] == "hup" && got["runtime"] == "yes", fmt.Sprint(got)
	})
	write("node_name = \n")
	if err := n.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, 20*time.Second, "a bad SIGHUP reload to be logged", func() (bool, string) {
		return strings.Contains(n.proc.Out.String(), "reload failed; keeping the running configuration"), ""
	})
	if _, _, code := n.ctl(t, "members"); code != 0 {
		t.Errorf("serfctl members after a bad SIGHUP = exit %d; want 0", code)
	}
}

// TestReloadNotifiesSystemd checks the sd_notify protocol around a reload:
// RELOADING=1 with MONOTONIC_USEC before, READY=1 and a STATUS= after.
func TestReloadNotifiesSystemd(t *testing.T) {
	t.Parallel()
	dir := testutil.ShortTempDir(t, "sn-")
	notifyPath := filepath.Join(dir, "notify")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan string, 100)
	defer func() {
		nl.Close()
		for range msgs { // wait for the reader to stop
		}
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := nl.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(20 * time.Second):
			t.Fatalf("no sd_notify message within 20s; want %s", what)
			return ""
		}
	}

	socket := filepath.Join(dir, "ctl.sock")
	cfgPath := filepath.Join(dir, "config.hcl")
	cfg := fmt.Sprintf("node_name = \"sn1\"\nbind = \"127.0.0.77:%d\"\nprofile = \"local\"\ncontrol { socket = %q }\nhandlers { dir = %q }\n",
		testutil.FreePort(t, "127.0.0.77"), socket, dir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(bin.serfd, "-config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	defer testutil.Start(t, "serfd sn1", cmd).Kill() // before the notify socket closes
	for m := next("READY=1"); m != "READY=1"; m = next("READY=1") {
	}
	n := &node{socket: socket}
	if out, errOut, code := n.ctl(t, "reload"); code != 0 {
		t.Fatalf("serfctl reload = %q %q exit %d; want exit 0", out, errOut, code)
	}
	// Skip STATUS= updates; then RELOADING=1 with MONOTONIC_USEC in one
	// datagram, READY=1, and a STATUS= saying it reloaded.
	m := next("RELOADING=1")
	for strings.HasPrefix(m, "STATUS=") {
		m = next("RELOADING=1")
	}
	if !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+\n?$`).MatchString(m) {
		t.Errorf("sd_notify at a reload = %q; want RELOADING=1 and MONOTONIC_USEC=", m)
	}
	m = next("READY=1")
	for strings.HasPrefix(m, "STATUS=") && !strings.Contains(m, "reloaded at") {
		m = next("READY=1")
	}
	if m != "READY=1" {
		t.Errorf("sd_notify after RELOADING=1 = %q; want READY=1", m)
	}
	if m := next("STATUS="); !strings.HasPrefix(m, "STATUS=") || !strings.Contains(m, "reloaded at") {
		t.Errorf("sd_notify after a reload = %q; want STATUS= saying it reloaded", m)
	}
}

// Tags set at run time survive a restart through the tags file (Serf's
// format), and a reload does not wipe them (Serf #445); a tag the
// configuration changed while serfd was down applies at the start.
func TestTagsFileKeepsRuntimeTagsAcrossRestart(t *testing.T) {
	ip := "127.0.0.81"
	dir := testutil.ShortTempDir(t, "tags-")
	tagsFile := filepath.Join(dir, "tags.json")
	n := startNode(t, "tg1", ip, fmt.Sprintf("tags_file = %q\ntags = { role = \"web\" }\n", tagsFile))
	if _, errOut, code := n.ctl(t, "tags", "-set", "zone=b"); code != 0 {
		t.Fatalf("tags -set: %s", errOut)
	}
	if _, errOut, code := n.ctl(t, "reload"); code != 0 {
		t.Fatalf("reload: %s", errOut)
	}
	tagsOf := func() map[string]string {
		t.Helper()
		ms, _ := n.members(t)
		return ms["tg1"].Tags
	}
	if got := tagsOf(); got["zone"] != "b" || got["role"] != "web" {
		t.Errorf("tags after a reload = %v; want zone=b kept, role=web", got)
	}
	b, err := os.ReadFile(tagsFile)
	var file map[string]string
	if err != nil || json.Unmarshal(b, &file) != nil || file["zone"] != "b" {
		t.Errorf("tags file = %q, %v; want a JSON object with zone=b", b, err)
	}

	n.stop(t)
	cfg := filepath.Join(n.dir, "config.hcl")
	old, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(old), `role = "web"`, `role = "db"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	n.launch(t)
	testutil.WaitFor(t, 20*time.Second, "tg1 back with its tags", func() bool {
		got := tagsOf()
		return got["zone"] == "b" && got["role"] == "db"
	})
}
