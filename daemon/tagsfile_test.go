package daemon

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The tags a node starts with: the file's, with the configuration's
// changes since the file was written applied as a reload applies them.
func TestLoadTags(t *testing.T) {
	m := func(kv ...string) map[string]string {
		out := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	for _, tc := range []struct {
		name             string
		file, configured map[string]string // nil: no such file
		cfg, want        map[string]string
	}{
		{"no file: the configuration's", nil, nil, m("a", "1"), m("a", "1")},
		{"Serf's file alone: its tags, plus configured ones it lacks", m("a", "1", "x", "9"), nil, m("a", "2", "b", "3"), m("a", "1", "x", "9", "b", "3")},
		{"a runtime tag survives", m("a", "1", "x", "9"), m("a", "1"), m("a", "1"), m("a", "1", "x", "9")},
		{"a configured change since applies", m("a", "1", "x", "9"), m("a", "1"), m("a", "5"), m("a", "5", "x", "9")},
		{"a tag no longer configured goes", m("a", "1", "x", "9"), m("a", "1"), m(), m("x", "9")},
		{"unless changed at run time", m("a", "7"), m("a", "1"), m(), m("a", "7")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tags.json")
			if tc.file != nil {
				writeJSON(t, path, tc.file)
			}
			if tc.configured != nil {
				writeJSON(t, path+".configured", tc.configured)
			}
			got, err := loadTags(path, tc.cfg)
			if err != nil || !maps.Equal(got, tc.want) {
				t.Errorf("loadTags = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// A tags file is read as a configuration file is (regular, safe owner and
// mode) and must be a JSON object of strings; saving writes Serf's format,
// mode 0600, that loads back.
func TestTagsFileFormatAndRules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tags.json")
	if err := saveTags(path, map[string]string{"role": "web", "zone": "a"}, map[string]string{"role": "web"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var serf map[string]string
	if err := json.Unmarshal(b, &serf); err != nil || serf["zone"] != "a" || len(serf) != 2 {
		t.Errorf("tags file = %q, %v; want Serf's JSON object of the tags", b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tags file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if got, err := loadTags(path, map[string]string{"role": "web"}); err != nil || got["zone"] != "a" {
		t.Errorf("loadTags after saveTags = %v, %v; want zone=a kept", got, err)
	}

	if err := os.WriteFile(path, []byte(`{"a": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTags(path, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("loadTags of a non-string value = %v; want an error naming the file", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTags(path, nil); err == nil || !strings.Contains(err.Error(), "group- or world-writable") {
		t.Errorf("loadTags of a world-writable file = %v; want it refused", err)
	}
}
