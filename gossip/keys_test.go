package gossip

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// testKey returns a 32-byte key filled with b, and its base64.
func testKey(b byte) ([]byte, string) {
	k := bytes.Repeat([]byte{b}, 32)
	return k, base64.StdEncoding.EncodeToString(k)
}

func readKeyringFile(t *testing.T, path string) []string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat keyring file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring file %s mode = %v; want 0600", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := json.Unmarshal(data, &keys); err != nil {
		t.Fatalf("keyring file %s = %q: %v", path, data, err)
	}
	return keys
}

func TestKeyRotationAcrossThreeEncryptedNodes(t *testing.T) {
	k1raw, k1 := testKey(1)
	_, k2 := testKey(2)
	dir := t.TempDir()
	files := map[string]string{}
	nodes := threeQueryNodes(t, 60, func(cfg *Config) {
		cfg.EncryptKeys = [][]byte{k1raw}
		cfg.KeyringFile = filepath.Join(dir, cfg.NodeName+".keyring")
		files[cfg.NodeName] = cfg.KeyringFile
	})
	a := nodes[0]
	if !a.EncryptionEnabled() {
		t.Fatalf("EncryptionEnabled() = false; want true")
	}
	check := func(op string, resp *KeyResponse, keys, primary map[string]int) {
		t.Helper()
		if resp.NumNodes != 3 || resp.NumResp != 3 || resp.NumErr != 0 || len(resp.Messages) != 0 {
			t.Errorf("%s = %d nodes, %d answers, %d errors, messages %v; want 3, 3, 0, none",
				op, resp.NumNodes, resp.NumResp, resp.NumErr, resp.Messages)
		}
		if keys != nil && (!reflect.DeepEqual(resp.Keys, keys) || !reflect.DeepEqual(resp.PrimaryKeys, primary)) {
			t.Errorf("%s keys = %v, primary %v; want %v, %v", op, resp.Keys, resp.PrimaryKeys, keys, primary)
		}
	}
	checkFiles := func(want ...string) {
		t.Helper()
		for name, path := range files {
			if got := readKeyringFile(t, path); !reflect.DeepEqual(got, want) {
				t.Errorf("%s keyring file = %v; want %v", name, got, want)
			}
		}
	}
	op := func(name string, f func(string) (*KeyResponse, error), key string) *KeyResponse {
		t.Helper()
		resp, err := f(key)
		if err != nil {
			t.Fatalf("%s(%s) = %v; want nil (messages %v)", name, key, err, resp.Messages)
		}
		return resp
	}

	resp, err := a.ListKeys()
	if err != nil {
		t.Fatalf("ListKeys() = %v; want nil", err)
	}
	check("ListKeys()", resp, map[string]int{k1: 3}, map[string]int{k1: 3})

	check("InstallKey(k2)", op("InstallKey", a.InstallKey, k2), nil, nil)
	checkFiles(k1, k2)
	resp, _ = a.ListKeys()
	check("ListKeys() after install", resp, map[string]int{k1: 3, k2: 3}, map[string]int{k1: 3})

	check("UseKey(k2)", op("UseKey", nodes[1].UseKey, k2), nil, nil)
	checkFiles(k2, k1)
	resp, _ = a.ListKeys()
	check("ListKeys() after use", resp, map[string]int{k1: 3, k2: 3}, map[string]int{k2: 3})

	resp, err = a.RemoveKey(k2)
	if err == nil || !strings.Contains(err.Error(), "3/3 nodes reported failure") {
		t.Errorf("RemoveKey(primary) = %v; want \"3/3 nodes reported failure\"", err)
	}
	if len(resp.Messages) != 3 || !strings.Contains(resp.Messages["c"], "primary") {
		t.Errorf("RemoveKey(primary) messages = %v; want one per node about the primary key", resp.Messages)
	}

	check("RemoveKey(k1)", op("RemoveKey", a.RemoveKey, k1), nil, nil)
	checkFiles(k2)
	resp, _ = a.ListKeys()
	check("ListKeys() after remove", resp, map[string]int{k2: 3}, map[string]int{k2: 3})

	// The cluster still talks, with the new key only. A query is best
	// effort (gossip with no push/pull repair), so a loaded machine gets up
	// to three tries for one that every node answers.
	var got answers
	for try := 0; try < 3 && (len(got.acks) != 3 || len(got.responses) != 3); try++ {
		r, err := nodes[2].Query("echo", []byte("k2"), &QueryParams{RequestAck: true, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		got = collect(t, r, 3, 3)
		r.Close()
	}
	if len(got.acks) != 3 || len(got.responses) != 3 {
		t.Errorf("query after rotation = acks %v, responses %v; want 3 of each", got.acks, got.responses)
	}

	for _, bad := range []struct{ key, want string }{
		{"not base64!", "decode base64 key"},
		{base64.StdEncoding.EncodeToString([]byte("short")), "want 16, 24 or 32"},
	} {
		if _, err := a.InstallKey(bad.key); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("InstallKey(%q) = %v; want an error containing %q", bad.key, err, bad.want)
		}
	}
}

func TestKeyOperationsWithoutEncryption(t *testing.T) {
	nodes := []*node{newQueryNode(t, "p", 63, nil, nil), newQueryNode(t, "q", 64, nil, nil)}
	joinAll(t, nodes)
	if nodes[0].EncryptionEnabled() {
		t.Errorf("EncryptionEnabled() = true; want false")
	}
	_, k := testKey(3)
	resp, err := nodes[0].InstallKey(k)
	if err == nil || !strings.Contains(err.Error(), "2/2 nodes reported failure") {
		t.Errorf("InstallKey without encryption = %v; want \"2/2 nodes reported failure\"", err)
	}
	if want := "No keyring to modify (encryption not enabled)"; resp.Messages["q"] != want {
		t.Errorf("InstallKey without encryption: q says %q; want %q", resp.Messages["q"], want)
	}
	resp, err = nodes[1].ListKeys()
	if err == nil || resp.NumErr != 2 || resp.Messages["p"] != "Keyring is empty (encryption not enabled)" {
		t.Errorf("ListKeys without encryption = %+v, %v; want 2 failures saying the keyring is empty", resp, err)
	}
}

func TestEncryptKeyConfig(t *testing.T) {
	_, err := Create(Config{NodeName: "x", Logger: testLogger(t, "x"), BindAddr: "127.0.0.65",
		EncryptKeys: [][]byte{make([]byte, 10)}, QuerySizeLimit: -1})
	if err == nil || !strings.Contains(err.Error(), "encrypt key 1 is 10 bytes") || !strings.Contains(err.Error(), "query size limit -1") {
		t.Errorf("Create(10-byte key, query limit -1) = %v; want both problems reported", err)
	}
}

func TestKeyAnswerTruncatesList(t *testing.T) {
	c := newBareTagged(t, "a", nil)
	c.cfg.QueryResponseSizeLimit = 300
	q := &Query{c: c, name: listKeysQuery, key: queryKey{ltime: 1, id: 1}}
	var keys []string
	for i := range 20 {
		_, k := testKey(byte(i))
		keys = append(keys, k)
	}
	resp := keyResponse{Result: true, Keys: keys, PrimaryKey: keys[0]}
	buf, err := c.keyAnswer(q, &resp)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := q.encodeResponse(buf)
	if len(full) > 300 || len(resp.Keys) == 0 || len(resp.Keys) >= 300/minEncodedKeyLength {
		t.Errorf("keyAnswer(20 keys, limit 300) = %d bytes with %d keys; want <= 300 bytes, 1..%d keys",
			len(full), len(resp.Keys), 300/minEncodedKeyLength-1)
	}
	if !strings.HasPrefix(resp.Message, "truncated key list response, showing first") {
		t.Errorf("keyAnswer message = %q; want a truncation notice", resp.Message)
	}
	got, err := c.wire.decodeKeyResponse(buf)
	if err != nil || !reflect.DeepEqual(got.Keys, keys[:len(got.Keys)]) {
		t.Errorf("decodeKeyResponse(keyAnswer) = %+v, %v; want the first keys", got, err)
	}
}

// TestKeyAndConflictGolden pins the payloads of key and conflict queries.
func TestKeyAndConflictGolden(t *testing.T) {
	w := newWireCodec()
	key := bytes.Repeat([]byte{0xab}, 16)
	tests := []struct {
		name string
		t    msgType
		v    any
		want string
	}{
		{"key request", msgKeyRequest, &keyRequest{Key: key}, "\x07\x81" + raw("Key") + raw(string(key))},
		{"list-keys request", msgKeyRequest, &keyRequest{Key: []byte{}}, "\x07\x81" + raw("Key") + "\xa0"},
		{"key response", msgKeyResponse, &keyResponse{Result: true, Keys: []string{"a", "b"}, PrimaryKey: "a"},
			"\x08\x84" + raw("Keys") + "\x92" + raw("a") + raw("b") + raw("Message") + raw("") +
				raw("PrimaryKey") + raw("a") + raw("Result") + "\xc3"},
		{"key failure", msgKeyResponse, &keyResponse{Message: "no"},
			"\x08\x84" + raw("Keys") + "\xc0" + raw("Message") + raw("no") + raw("PrimaryKey") + raw("") + raw("Result") + "\xc2"},
		{"conflict member", msgConflictResponse, &conflictMember{Name: "b", Addr: net.IPv4(10, 0, 0, 2).To4(), Port: 7946,
			Tags: map[string]string{"role": "web"}, Status: int(StatusAlive), ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2,
			DelegateMin: 2, DelegateMax: 5, DelegateCur: 4},
			"\x06\x8b" + raw("Addr") + "\xa4\x0a\x00\x00\x02" + raw("DelegateCur") + "\x04" + raw("DelegateMax") + "\x05" +
				raw("DelegateMin") + "\x02" + raw("Name") + raw("b") + raw("Port") + "\xcd\x1f\x0a" +
				raw("ProtocolCur") + "\x02" + raw("ProtocolMax") + "\x05" + raw("ProtocolMin") + "\x01" +
				raw("Status") + "\x01" + raw("Tags") + "\x81" + raw("role") + raw("web")},
		{"conflict unknown", msgConflictResponse, (*conflictMember)(nil), "\x06\xc0"},
	}
	for _, tt := range tests {
		got, err := w.encode(tt.t, tt.v)
		if err != nil {
			t.Fatalf("encode(%s) error: %v", tt.name, err)
		}
		if string(got) != tt.want {
			t.Errorf("encode(%s) =\n%s; want\n%s", tt.name, hex.Dump(got), hex.Dump([]byte(tt.want)))
		}
	}
	for _, tt := range []struct {
		name string
		typ  byte
		v    any
		want string
	}{
		{"node filter", filterNode, []string{"a", "b"}, "\x00\x92" + raw("a") + raw("b")},
		{"tag filter", filterTag, &tagFilter{Tag: "role", Expr: "^web"}, "\x01\x82" + raw("Expr") + raw("^web") + raw("Tag") + raw("role")},
	} {
		got, err := encodeFilter(tt.typ, tt.v, w)
		if err != nil || string(got) != tt.want {
			t.Errorf("encodeFilter(%s) = %x, %v; want %x", tt.name, got, err, tt.want)
		}
	}

	// Decoding round trips, and a nil member is the zero member.
	m, err := w.decodeConflictResponse([]byte("\x06\xc0"))
	if err != nil || m.Name != "" || m.Addr != nil {
		t.Errorf("decodeConflictResponse(nil member) = %+v, %v; want the zero member", m, err)
	}
	req, err := w.decodeKeyRequest([]byte(tests[0].want))
	if err != nil || !bytes.Equal(req.Key, key) {
		t.Errorf("decodeKeyRequest(golden) = %x, %v; want %x", req.Key, err, key)
	}
	for _, bad := range []string{"", "\x08\x80", "\x07", "\x07\x91\x01", "\x07\x81\xa3Key\x01"} {
		if _, err := w.decodeKeyRequest([]byte(bad)); err == nil {
			t.Errorf("decodeKeyRequest(%q) = nil error; want an error", bad)
		}
	}
	for _, bad := range []string{"", "\x07\x80", "\x08", "\x08\x81\xa6Result\xa1x"} {
		if _, err := w.decodeKeyResponse([]byte(bad)); err == nil {
			t.Errorf("decodeKeyResponse(%q) = nil error; want an error", bad)
		}
	}
	for _, bad := range []string{"", "\x07\xc0", "\x06", "\x06\x81\xa4Port\xa1x"} {
		if _, err := w.decodeConflictResponse([]byte(bad)); err == nil {
			t.Errorf("decodeConflictResponse(%q) = nil error; want an error", bad)
		}
	}
}

func TestNameConflictShutsDownTheNewcomer(t *testing.T) {
	var nodes []*node
	shutdowns := make(chan string, 4)
	for i, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, newQueryNode(t, name, 66+i, nil, func(cfg *Config) {
			cfg.OnShutdown = func(error) { shutdowns <- cfg.NodeName }
		}))
	}
	joinAll(t, nodes)
	reasons := make(chan error, 1)
	impostor := newQueryNode(t, "b", 69, nil, func(cfg *Config) {
		cfg.OnShutdown = func(reason error) { reasons <- reason }
	})
	impostor.Join(t.Context(), []string{nodes[0].addr}, false)
	select {
	case reason := <-reasons:
		if !errors.Is(reason, ErrNameConflict) || !strings.Contains(reason.Error(), `"b"`) {
			t.Errorf("OnShutdown(reason = %v); want a name conflict reason", reason)
		}
	case <-time.After(settle):
		t.Fatalf("the second node named b never shut itself down")
	}
	if got := impostor.clusterState(); got != stateShutdown {
		t.Errorf("impostor state = %v; want shut down", got)
	}
	if err := impostor.Shutdown(); err != nil {
		t.Errorf("Shutdown() after a self shutdown = %v; want nil", err)
	}
	select {
	case name := <-shutdowns:
		t.Errorf("%s shut itself down; want only the newcomer to", name)
	default:
	}
	if got := memberStatus(nodes[0].Cluster, "b"); got != StatusAlive {
		t.Errorf("a's view of the original b = %v; want alive", got)
	}
	for _, m := range nodes[0].Members() {
		if m.Name == "b" && !m.Addr.Equal(nodes[1].LocalMember().Addr) {
			t.Errorf("a knows b at %v; want the original %v", m.Addr, nodes[1].LocalMember().Addr)
		}
	}
}

// FuzzKeyPayloads feeds arbitrary key query payloads and answers to their
// decoders and to the key query handler of a node with a keyring.
func FuzzKeyPayloads(f *testing.F) {
	w := newWireCodec()
	key := bytes.Repeat([]byte{1}, 16)
	for _, seed := range []struct {
		t msgType
		v any
	}{
		{msgKeyRequest, &keyRequest{Key: key}},
		{msgKeyRequest, &keyRequest{Key: []byte{}}},
		{msgKeyResponse, &keyResponse{Result: true, Keys: []string{"a"}, PrimaryKey: "a"}},
		{msgKeyResponse, &keyResponse{Message: "no"}},
		{msgConflictResponse, &conflictMember{Name: "b", Addr: net.IPv6loopback, Port: 1, Tags: map[string]string{"a": "b"}}},
		{msgConflictResponse, (*conflictMember)(nil)},
	} {
		b, err := w.encode(seed.t, seed.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w.decodeKeyRequest(data)
		w.decodeKeyResponse(data)
		w.decodeConflictResponse(data)
		c := newBareTagged(t, "a", nil)
		kr, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		c.ks.keyring = kr
		for _, name := range []string{installKeyQuery, useKeyQuery, removeKeyQuery, listKeysQuery} {
			c.answerKeyQuery(&Query{c: c, name: name, deadline: time.Now().Add(time.Minute)}, data)
		}
		c.answerConflict(&Query{c: c, name: conflictQuery, deadline: time.Now().Add(time.Minute)}, data)
		if len(kr.GetKeys()) == 0 || !bytes.Equal(kr.GetPrimaryKey(), kr.GetKeys()[0]) {
			t.Fatalf("keyring after %x = %x; want a primary key first", data, kr.GetKeys())
		}
	})
}
