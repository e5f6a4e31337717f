package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/serfd/serfd/ctl"
)

// FuzzDecode feeds arbitrary bodies to decode for every request type of
// the control API: it must never panic, every failure must be a 400 or a
// 413, never something the route table would answer with a 500, and a
// body it accepts must encode to one that it accepts again and that
// encodes the same (what serfctl sends for a request is what serfd reads).
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"addrs":["10.0.0.2"],"replay":true}`,
		`{"name":"deploy","payload":"eGN4eA==","coalesce":true}`,
		`{"name":"q","filter_nodes":["a"],"filter_tags":{"role":"w.*"},"timeout":"1s","relay_factor":2}`,
		`{"set":{"a":"b"},"delete":["c"]}`,
		`{"node":"n","prune":true}`,
		`{"op":"install","key":"abc="}`,
		`{}`, ``, `null`, `[]`, `{"name":1}`, `{"x":1}`, `{} {}`, `{"payload":"!!"}`,
		`{"relay_factor":300}`, "\x00\xff", `{"filter_tags":{"a":null}}`,
	} {
		f.Add([]byte(seed))
	}
	targets := []func() any{
		func() any { return new(ctl.JoinRequest) },
		func() any { return new(ctl.EventRequest) },
		func() any { return new(ctl.QueryRequest) },
		func() any { return new(ctl.TagsRequest) },
		func() any { return new(ctl.ForceLeaveRequest) },
		func() any { return new(ctl.KeysRequest) },
		func() any { return new(struct{}) }, // reload, leave
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, newReq := range targets {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(body))
			r.Body = http.MaxBytesReader(w, r.Body, ctl.MaxRequestBody)
			v := newReq()
			err := decode(r, v)
			if err == nil {
				enc, err := json.Marshal(v)
				if err != nil {
					t.Fatalf("json.Marshal(%+v) decoded from %q: %v", v, body, err)
				}
				again := newReq()
				r := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(enc))
				if err := decode(r, again); err != nil {
					t.Fatalf("decode(%q), the encoding of %q decoded into %T = %v; want nil", enc, body, v, err)
				}
				if enc2, _ := json.Marshal(again); !bytes.Equal(enc, enc2) {
					t.Fatalf("%T round trip of %q: encoded %s, then %s", v, body, enc, enc2)
				}
				continue
			}
			var ae *apiError
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &ae) && ae.status == http.StatusBadRequest:
			case errors.As(err, &mbe) && len(body) > ctl.MaxRequestBody:
			default:
				t.Fatalf("decode(%q) into %T = %v (%T); want a 400 apiError or a MaxBytesError", body, v, err, err)
			}
		}
	})
}

func TestMergeTags(t *testing.T) {
	for _, tc := range []struct {
		live, oldCfg, newCfg map[string]string
		want                 string
		changed              bool
	}{
		// A runtime tag survives a reload that does not mention it.
		{map[string]string{"role": "web", "rt": "1"}, map[string]string{"role": "web"}, map[string]string{"role": "web"}, "map[role:web rt:1]", false},
		// A changed config value applies; runtime tags stay.
		{map[string]string{"role": "web", "rt": "1"}, map[string]string{"role": "web"}, map[string]string{"role": "db"}, "map[role:db rt:1]", true},
		// A tag removed from the config goes, unless changed at run time.
		{map[string]string{"role": "web", "dc": "x"}, map[string]string{"role": "web", "dc": "east"}, map[string]string{}, "map[dc:x]", true},
		// An unchanged config value does not overwrite a runtime change.
		{map[string]string{"role": "api"}, map[string]string{"role": "web"}, map[string]string{"role": "web"}, "map[role:api]", false},
	} {
		got, changed := mergeTags(tc.live, tc.oldCfg, tc.newCfg)
		if fmt.Sprint(got) != tc.want || changed != tc.changed {
			t.Errorf("mergeTags(%v, %v, %v) = %v, %t; want %s, %t", tc.live, tc.oldCfg, tc.newCfg, got, changed, tc.want, tc.changed)
		}
	}
}
