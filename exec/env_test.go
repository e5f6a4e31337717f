package exec

import (
	"slices"
	"testing"
)

func TestTagEnvName(t *testing.T) {
	for tag, want := range map[string]string{
		"role":      "SERF_TAG_ROLE",
		"dc-1.zone": "SERF_TAG_DC_1_ZONE",
		"Mixed_9":   "SERF_TAG_MIXED_9",
		"ünï":       "SERF_TAG__N_",
		"a b=c":     "SERF_TAG_A_B_C",
		"":          "SERF_TAG_",
	} {
		if got := tagEnvName(tag); got != want {
			t.Errorf("tagEnvName(%q) = %q; want %q", tag, got, want)
		}
	}
}

func TestPayloadStdin(t *testing.T) {
	for payload, want := range map[string]string{
		"":       "",
		"x":      "x\n",
		"x\n":    "x\n",
		"a\nb":   "a\nb\n",
		"\n":     "\n",
		"a\n\n":  "a\n\n",
		"a\x00b": "a\x00b\n",
	} {
		if got := string(payloadStdin([]byte(payload))); got != want {
			t.Errorf("payloadStdin(%q) = %q; want %q", payload, got, want)
		}
	}
}

func TestMemberStdin(t *testing.T) {
	for _, tc := range []struct {
		m    Member
		want string
	}{
		{Member{Name: "n", Addr: "10.0.0.1", Tags: map[string]string{"role": "web", "b": "2", "a": "1"}}, "n\t10.0.0.1\tweb\ta=1,b=2,role=web\n"},
		{Member{Name: "n", Addr: "fe80::1"}, "n\tfe80::1\t\t\n"},
		{Member{Name: "t\tn\nx", Addr: "10.0.0.1", Tags: map[string]string{"role": "a\tb", "k": "x=y,z\\"}}, `t\tn\nx` + "\t10.0.0.1\t" + `a\tb` + "\t" + `k=x=y,z\,role=a\tb` + "\n"},
	} {
		if got := string(memberStdin([]Member{tc.m})); got != tc.want {
			t.Errorf("memberStdin(%+v) = %q; want %q", tc.m, got, tc.want)
		}
	}
}

func TestScriptEnv(t *testing.T) {
	ev := &Event{Type: "user", UserEvent: "dep\x00loy", LTime: 3, SelfName: "me", SelfAddr: "10.0.0.9", SelfTags: map[string]string{"role": "db", "a-b": "1", "a.b": "2"}}
	got := scriptEnv("/bin", []envVar{{"FOO", "1"}, {"PATH", "/opt/bin"}, {"SERF_SELF_NAME", "spoof"}}, contractEnv(ev), "h", 2)
	want := []string{
		"PATH=/opt/bin", "HOME=/", "LANG=C.UTF-8", "FOO=1",
		"SERF_SELF_NAME=me", "SERF_EVENT=user", "SERF_SELF_ROLE=db",
		"SERF_TAG_A_B=2", "SERF_TAG_ROLE=db",
		"SERF_USER_EVENT=deploy", "SERF_USER_LTIME=3", "SERF_SELF_ADDR=10.0.0.9", "SERF_HANDLER=h",
		"SERF_RUN_ATTEMPT=2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("scriptEnv(...) = %q; want %q", got, want)
	}
}
