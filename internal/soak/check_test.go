package soak

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func ev(id, host string, s float64, outcome string) EventRecord {
	return EventRecord{ID: id, Host: host, Sent: at(s), Done: at(s + 0.01), Outcome: outcome}
}

func runs(node string, ids ...string) []Run {
	out := make([]Run, len(ids))
	for i, id := range ids {
		out[i] = Run{Node: node, ID: id, LTime: uint64(i + 1), T: at(float64(i) + 0.5)}
	}
	return out
}

// round makes a members round at s where every host in alive sees every
// host in alive alive, and the others failed; hosts in silent do not answer.
func round(s float64, hosts, alive, silent []string) MembersRound {
	r := MembersRound{T: at(s), Views: map[string]map[string]string{}}
	for _, x := range hosts {
		if slices.Contains(silent, x) {
			continue
		}
		view := map[string]string{}
		for _, y := range hosts {
			view[y] = "failed"
			if slices.Contains(alive, y) && slices.Contains(alive, x) {
				view[y] = "alive"
			}
			if x == y {
				view[y] = "alive"
			}
		}
		r.Views[x] = view
	}
	return r
}

func finalHeal(s float64) Fault { return Fault{Kind: FinalHeal, Inject: at(s), Heal: at(s)} }

var hosts3 = []string{"h1", "h2", "h3"}

// base is a clean run: two accepted events delivered once everywhere, one
// refused, a restart of h2 healed at 10 s, all alive from 11 s on.
func base() Input {
	return Input{
		Hosts:  hosts3,
		Events: []EventRecord{ev("e1", "h1", 1, Accepted), ev("e2", "h2", 2, Accepted), ev("e3", "h3", 3, Refused)},
		Runs:   map[string][]Run{"h1": runs("h1", "e1", "e2"), "h2": runs("h2", "e1", "e2"), "h3": runs("h3", "e2", "e1")},
		Rounds: []MembersRound{
			round(9, hosts3, []string{"h1", "h3"}, []string{"h2"}),
			round(10.5, hosts3, []string{"h1", "h3"}, nil),
			round(12, hosts3, hosts3, nil),
			round(60, hosts3, hosts3, nil),
		},
		Faults: []Fault{{Kind: "restart", Host: "h2", Inject: at(8), Heal: at(10)}, finalHeal(11)},
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Input)
		check  func(t *testing.T, r Report)
		failOn string // a substring of Failures; "" = passes
	}{{
		name: "clean run passes",
		check: func(t *testing.T, r Report) {
			if r.Accepted != 2 || r.Refused != 1 || r.Delivered != 6 || r.Expected != 6 {
				t.Errorf("accepted, refused, delivered, expected = %d %d %d %d; want 2 1 6 6", r.Accepted, r.Refused, r.Delivered, r.Expected)
			}
			if len(r.Converge) != 1 || r.Converge[0] != 2*time.Second {
				t.Errorf("Converge = %v; want [2s] (heal at 10 s, first all-alive round at 12 s)", r.Converge)
			}
			if !r.FinalConverged || r.FinalConverge != time.Second {
				t.Errorf("FinalConverge = %v, %v; want 1s, true", r.FinalConverge, r.FinalConverged)
			}
			if r.Faults != 1 || r.FaultKinds["restart"] != 1 {
				t.Errorf("Faults, FaultKinds = %d, %v; want 1, restart 1", r.Faults, r.FaultKinds)
			}
		},
	}, {
		name: "an accepted event missing on one node is lost, near the fault on that node",
		edit: func(in *Input) { in.Runs["h2"] = runs("h2", "e1") },
		check: func(t *testing.T, r Report) {
			want := []Miss{{Node: "h2", ID: "e2", Sender: "h2", Sent: at(2), Faults: []string{"restart@h2"}}}
			if fmt.Sprint(r.Lost) != fmt.Sprint(want) {
				t.Errorf("Lost = %v; want %v", r.Lost, want)
			}
			if r.LostOn["h2"] != 1 || r.LostVia["h2"] != 1 || len(r.LostOn) != 1 {
				t.Errorf("LostOn, LostVia = %v, %v; want h2 1, h2 1", r.LostOn, r.LostVia)
			}
			if r.LostIDs != 1 || r.LostEverywhere != 0 || r.LostNear["restart"] != 1 {
				t.Errorf("LostIDs, LostEverywhere, LostNear = %d, %d, %v; want 1, 0, restart 1", r.LostIDs, r.LostEverywhere, r.LostNear)
			}
		},
		failOn: "1 lost deliveries",
	}, {
		name: "a loss far from any fault is attributed to none",
		edit: func(in *Input) {
			in.Events = append(in.Events, ev("e4", "h1", 100, Accepted))
			in.Runs["h1"] = append(in.Runs["h1"], Run{Node: "h1", ID: "e4", T: at(100.5)})
			in.Runs["h3"] = append(in.Runs["h3"], Run{Node: "h3", ID: "e4", T: at(100.5)})
		},
		check: func(t *testing.T, r Report) {
			if len(r.Lost) != 1 || r.Lost[0].Node != "h2" || len(r.Lost[0].Faults) != 0 || r.LostNear["no fault"] != 1 {
				t.Errorf("Lost, LostNear = %v, %v; want e4 on h2 with no fault near", r.Lost, r.LostNear)
			}
		},
		failOn: "lost deliveries",
	}, {
		name: "an event that ran nowhere is lost on every node",
		edit: func(in *Input) {
			for h := range in.Runs {
				in.Runs[h] = runs(h, "e1")
			}
		},
		check: func(t *testing.T, r Report) {
			if len(r.Lost) != 3 || r.LostIDs != 1 || r.LostEverywhere != 1 {
				t.Errorf("len(Lost), LostIDs, LostEverywhere = %d, %d, %d; want 3, 1, 1", len(r.Lost), r.LostIDs, r.LostEverywhere)
			}
		},
		failOn: "3 lost deliveries",
	}, {
		name: "an id run twice on one node is duplicated",
		edit: func(in *Input) { in.Runs["h3"] = runs("h3", "e1", "e2", "e1") },
		check: func(t *testing.T, r Report) {
			want := []Dup{{Node: "h3", ID: "e1", Runs: 2, Faults: nil}}
			if fmt.Sprint(r.Duplicated) != fmt.Sprint(want) {
				t.Errorf("Duplicated = %v; want %v", r.Duplicated, want)
			}
		},
		failOn: "1 duplicated",
	}, {
		name: "a repeat after a crash that skipped its logged id is neither a delivery nor a duplicate",
		edit: func(in *Input) {
			in.Runs["h3"] = append(runs("h3", "e1", "e2"), Run{Node: "h3", ID: "e1", T: at(12), Attempt: 2, Skipped: true},
				Run{Node: "h3", ID: "e2", T: at(12), Attempt: 3, Skipped: true})
		},
		check: func(t *testing.T, r Report) {
			if r.Repeats != 2 || r.RepeatsSkipped != 2 || len(r.Duplicated) != 0 || r.Delivered != 6 {
				t.Errorf("Repeats, RepeatsSkipped, Duplicated, Delivered = %d, %d, %v, %d; want 2, 2, none, 6",
					r.Repeats, r.RepeatsSkipped, r.Duplicated, r.Delivered)
			}
		},
	}, {
		name: "a repeat that ran its id again is duplicated",
		edit: func(in *Input) {
			in.Runs["h3"] = append(runs("h3", "e1", "e2"), Run{Node: "h3", ID: "e1", T: at(12), Attempt: 2})
		},
		check: func(t *testing.T, r Report) {
			if r.Repeats != 1 || r.RepeatsSkipped != 0 {
				t.Errorf("Repeats, RepeatsSkipped = %d, %d; want 1, 0", r.Repeats, r.RepeatsSkipped)
			}
		},
		failOn: "1 duplicated",
	}, {
		name: "a refused event that ran anyway is neither lost nor a failure",
		edit: func(in *Input) { in.Runs["h3"] = runs("h3", "e1", "e2", "e3") },
		check: func(t *testing.T, r Report) {
			if r.RanUnaccepted != 1 || len(r.Lost) != 0 {
				t.Errorf("RanUnaccepted, Lost = %d, %v; want 1, none", r.RanUnaccepted, r.Lost)
			}
		},
	}, {
		name:   "a refused event run twice is still duplicated",
		edit:   func(in *Input) { in.Runs["h3"] = runs("h3", "e1", "e2", "e3", "e3") },
		failOn: "1 duplicated",
	}, {
		name: "runs of ids never sent are stray",
		edit: func(in *Input) { in.Runs["h1"] = runs("h1", "e1", "e2", "zzz") },
		check: func(t *testing.T, r Report) {
			if r.Stray != 1 {
				t.Errorf("Stray = %d; want 1", r.Stray)
			}
		},
	}, {
		name: "a node still failed 30 s after the final heal is stuck",
		edit: func(in *Input) {
			in.Rounds = []MembersRound{round(12, hosts3, []string{"h1", "h3"}, nil), round(60, hosts3, []string{"h1", "h3"}, nil)}
		},
		check: func(t *testing.T, r Report) {
			if r.FinalConverged || r.FinalLast["h1"]["h2"] != "failed" {
				t.Errorf("FinalConverged, FinalLast = %v, %v; want false with h1 seeing h2 failed", r.FinalConverged, r.FinalLast)
			}
		},
		failOn: "not seen alive by every node 30s after the final heal",
	}, {
		name: "converging later than 30 s after the final heal is stuck",
		edit: func(in *Input) {
			in.Rounds = []MembersRound{round(12, hosts3, []string{"h1", "h3"}, nil), round(42, hosts3, hosts3, nil)}
		},
		failOn: "after the final heal",
	}, {
		name:   "a run without the final heal line did not finish",
		edit:   func(in *Input) { in.Faults = in.Faults[:1] },
		failOn: "no final heal",
	}, {
		name: "re-convergence skips the nodes under another fault",
		edit: func(in *Input) {
			// h3 is partitioned from 9 to 20 s: at 10.5 s h1 and h2 see
			// each other alive, which is convergence for the restart of h2.
			in.Faults = []Fault{in.Faults[0], {Kind: "partition", Host: "h3", Inject: at(9), Heal: at(20)}, finalHeal(21)}
			in.Rounds[1] = round(10.5, hosts3, []string{"h1", "h2"}, nil)
			in.Rounds = slices.Insert(in.Rounds, 3, round(22, hosts3, hosts3, nil))
		},
		check: func(t *testing.T, r Report) {
			if len(r.Converge) != 2 || r.Converge[0] != 500*time.Millisecond {
				t.Errorf("Converge = %v; want [500ms, ...]", r.Converge)
			}
		},
	}, {
		name: "a heal never followed by convergence is stuck",
		edit: func(in *Input) {
			in.Faults = append([]Fault{{Kind: "loss", Host: "h1", Inject: at(61), Heal: at(70)}}, in.Faults...)
		},
		check: func(t *testing.T, r Report) {
			if r.NotConverged != 1 {
				t.Errorf("NotConverged = %d; want 1", r.NotConverged)
			}
		},
		failOn: "1 heals not followed within 30s by every node seeing every node alive (loss@h1 at 03:05:15)",
	}, {
		name: "a heal followed by convergence after more than 30 s is stuck",
		edit: func(in *Input) {
			in.Faults = append([]Fault{{Kind: "partition", Host: "h1", Inject: at(20), Heal: at(25)}}, in.Faults...)
			in.Rounds = slices.Insert(in.Rounds, 3, round(26, hosts3, []string{"h2", "h3"}, nil))
		},
		check: func(t *testing.T, r Report) {
			if r.NotConverged != 0 || len(r.Converge) != 2 || r.Converge[0] != 35*time.Second {
				t.Errorf("NotConverged, Converge = %d, %v; want 0, [35s 1s]", r.NotConverged, r.Converge)
			}
		},
		failOn: "1 heals not followed within 30s",
	}, {
		name: "a kill -9 is healed when serfd runs again; the time it took is reported",
		edit: func(in *Input) {
			in.Faults = append([]Fault{{Kind: Kill9Kind, Host: "h1", Inject: at(20), Heal: at(52)}}, in.Faults...)
			in.Rounds = slices.Insert(in.Rounds, 3, round(53, hosts3, nil, nil))
		},
		check: func(t *testing.T, r Report) {
			if len(r.Restarts) != 1 || r.Restarts[0] != 32*time.Second {
				t.Errorf("Restarts = %v; want [32s]", r.Restarts)
			}
			var out strings.Builder
			if err := r.Write(&out, 0); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "kill -9 -> systemd ran serfd again: max 32s") {
				t.Errorf("report does not give the restart time:\n%s", out.String())
			}
		},
	}, {
		name: "an uninjected watchdog restart fails the run; suppressions are summed",
		edit: func(in *Input) {
			in.Journals = map[string][]JournalEntry{"h2": {
				{"MESSAGE": "serfd.service: Watchdog timeout (limit 30s)!", "UNIT": "serfd.service", "_SYSTEMD_UNIT": "init.scope"},
				{"MESSAGE": "Suppressed 12 messages from serfd.service", "_TRANSPORT": "driver"},
				{"MESSAGE": "Suppressed 3 messages from /system.slice/serfd.service", "_TRANSPORT": "driver"},
				{"MESSAGE": "Suppressed 7 messages from systemd-networkd.service", "_TRANSPORT": "driver"},
				{"MESSAGE": "user event " + EventName, "MESSAGE_ID": msgUserEvent, "SERF_USER_EVENT": EventName},
				{"MESSAGE": "handler " + LogHandler + " run dropped: queue full, 1024 runs waiting (member-join h1)",
					"MESSAGE_ID": msgHandlerDropped, "HANDLER": LogHandler},
				{"MESSAGE": "handler " + LogHandler + " exited 1 after 3 ms (user event " + EventName + ")", "HANDLER": LogHandler, "EXIT_STATUS": "1"},
				{"MESSAGE": "handler " + LogHandler + " exited 0 after 2 ms (user event " + EventName + ")", "HANDLER": LogHandler, "EXIT_STATUS": "0"},
			}}
		},
		check: func(t *testing.T, r Report) {
			if r.Watchdog != 1 || r.Suppressed["h2"] != 15 || r.JournalUser["h2"] != 1 || r.HandlerDropped["h2"] != 1 || r.HandlerFailed["h2"] != 1 {
				t.Errorf("Watchdog, Suppressed, JournalUser, HandlerDropped, HandlerFailed = %d, %v, %v, %v, %v; want 1, h2 15, h2 1, h2 1, h2 1",
					r.Watchdog, r.Suppressed, r.JournalUser, r.HandlerDropped, r.HandlerFailed)
			}
		},
		failOn: "1 watchdog restarts that no fault caused",
	}, {
		name: "an injected watchdog restart does not fail the run",
		edit: func(in *Input) {
			in.Faults = append([]Fault{{Kind: WatchdogKind, Host: "h2", Inject: at(4), Heal: at(5)}}, in.Faults...)
			in.Journals = map[string][]JournalEntry{"h2": {
				{"MESSAGE": "serfd.service: Watchdog timeout (limit 30s)!", "UNIT": "serfd.service", "_SYSTEMD_UNIT": "init.scope"},
			}}
		},
		check: func(t *testing.T, r Report) {
			if r.Watchdog != 1 || r.UninjectedWatchdog() != 0 {
				t.Errorf("Watchdog, UninjectedWatchdog = %d, %d; want 1, 0", r.Watchdog, r.UninjectedWatchdog())
			}
		},
	}, {
		name: "no accepted event measures nothing",
		edit: func(in *Input) {
			in.Events = []EventRecord{ev("e1", "h1", 1, Unknown)}
		},
		failOn: "no event was accepted",
	}, {
		name: "hanging handler runs are counted apart",
		edit: func(in *Input) { in.HangRuns = map[string][]Run{"h1": runs("h1", "e1", "e2")} },
		check: func(t *testing.T, r Report) {
			if r.HangRuns != 2 || r.Delivered != 6 {
				t.Errorf("HangRuns, Delivered = %d, %d; want 2, 6", r.HangRuns, r.Delivered)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			if tt.edit != nil {
				tt.edit(&in)
			}
			r := Check(in)
			if tt.check != nil {
				tt.check(t, r)
			}
			failures := strings.Join(r.Failures(), "; ")
			switch {
			case tt.failOn == "" && failures != "":
				t.Errorf("Failures() = %q; want none", failures)
			case tt.failOn != "" && !strings.Contains(failures, tt.failOn):
				t.Errorf("Failures() = %q; want one containing %q", failures, tt.failOn)
			}
			var b strings.Builder
			if err := r.Write(&b, 1); err != nil {
				t.Fatalf("Write: %v", err)
			}
			last := b.String()[strings.LastIndex(strings.TrimRight(b.String(), "\n"), "\n")+1:]
			if pass := strings.HasPrefix(last, "soak: PASS"); pass != (tt.failOn == "") {
				t.Errorf("report ends %q; want PASS = %v", last, tt.failOn == "")
			}
		})
	}
}

// TestLoad reads a results directory as soak.sh writes it, with the
// formats the handlers, the generator and the fault loop produce.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(EventsFile, `{"id":"e000001","host":"h1","sent":"2026-01-02T03:04:05Z","done":"2026-01-02T03:04:05.01Z","outcome":"accepted"}
{"id":"e000002","host":"h2","sent":"2026-01-02T03:04:06Z","done":"2026-01-02T03:04:26Z","outcome":"unknown","error":"context deadline exceeded"}
{"id":"e0000`) // cut short by a kill: ignored
	write(QueriesFile, `{"id":"q00001","host":"h1","outcome":"accepted","expected":2,"acks":2,"responses":1}`+"\n")
	write(MembersFile, `{"t":"2026-01-02T03:04:07Z","views":{"h1":{"h1":"alive","h2":"alive"}},"errors":{"h2":"serfd is not running"}}`+"\n")
	write(FaultsFile, "kill9\th2\t-\t-\t1767323045.5\t1767323045.75\t-\nfinal-heal\t-\t-\t-\t1767323050\t1767323050\t-\n")
	write("runs/h1.log", "h1 e000001 7 1767323045.100000000\nh1 e000002 8 1767323046.2\n")
	write("runs/h2.log", "h2 e000001 7 1767323045.3\n")
	write("hang/h2.log", "h2 e000001 1767323045.4\n")
	write("journal/h1.json", `{"MESSAGE":"Suppressed 4 messages from serfd.service","_TRANSPORT":"driver","__REALTIME_TIMESTAMP":"1"}`+"\n")
	write("journal/h2.json", `{"MESSAGE":[1,2,3],"UNIT":"serfd.service"}`+"\n")

	in, err := Load(dir, []string{"h1", "h2"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(in.Events) != 2 || in.Events[1].Outcome != Unknown {
		t.Errorf("Events = %+v; want 2, the second unknown", in.Events)
	}
	if len(in.Queries) != 1 || in.Queries[0].Responses != 1 {
		t.Errorf("Queries = %+v", in.Queries)
	}
	if len(in.Rounds) != 1 || in.Rounds[0].Errors["h2"] == "" {
		t.Errorf("Rounds = %+v", in.Rounds)
	}
	wantFault := Fault{Kind: "kill9", Host: "h2", Inject: time.Unix(1767323045, 5e8), Heal: time.Unix(1767323045, 75e7)}
	if len(in.Faults) != 2 || !in.Faults[0].Inject.Equal(wantFault.Inject) || !in.Faults[0].Heal.Equal(wantFault.Heal) ||
		in.Faults[0].Peer != "" || in.Faults[1].Kind != FinalHeal {
		t.Errorf("Faults = %+v; want %+v and a final heal", in.Faults, wantFault)
	}
	if got := in.Runs["h1"]; len(got) != 2 || got[0].LTime != 7 || !got[0].T.Equal(time.Unix(1767323045, 1e8)) {
		t.Errorf("Runs[h1] = %+v", got)
	}
	if len(in.HangRuns["h2"]) != 1 || len(in.HangRuns["h1"]) != 0 {
		t.Errorf("HangRuns = %+v; want one on h2", in.HangRuns)
	}
	if in.Journals["h1"][0]["_TRANSPORT"] != "driver" || len(in.Journals["h2"][0]) != 1 {
		t.Errorf("Journals = %+v; want string fields kept, byte arrays dropped", in.Journals)
	}
	r := Check(in)
	if len(r.Lost) != 0 || r.Unknown != 1 || r.RanUnaccepted != 1 || r.Suppressed["h1"] != 4 {
		t.Errorf("Check: Lost %v, Unknown %d, RanUnaccepted %d, Suppressed %v; want none, 1, 1, h1 4", r.Lost, r.Unknown, r.RanUnaccepted, r.Suppressed)
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name, text string
		read       func(string) error
		want       string
	}{
		{"torn handler line", "h1 e1 3 1.5\nh1 e2\n", func(s string) error {
			_, err := ReadRuns(strings.NewReader(s), "h1.log", true)
			return err
		}, `h1.log:2: "h1 e2" has 2 fields; want 4 or 5`},
		{"skipped first attempt", "h1 e1 3 1.5 1 skipped\n", func(s string) error {
			_, err := ReadRuns(strings.NewReader(s), "h1.log", true)
			return err
		}, `h1.log:1: a first attempt marked skipped`},
		{"bad attempt", "h1 e1 3 1.5 x\n", func(s string) error {
			_, err := ReadRuns(strings.NewReader(s), "h1.log", true)
			return err
		}, `h1.log:1: attempt "x"`},
		{"bad fault time", "kill9\th1\t-\t-\tsoon\t2\t-\n", func(s string) error {
			_, err := ReadFaults(strings.NewReader(s), "faults.tsv")
			return err
		}, "faults.tsv:1: inject time"},
		{"short fault line", "kill9\th1\n", func(s string) error {
			_, err := ReadFaults(strings.NewReader(s), "faults.tsv")
			return err
		}, "faults.tsv:1: 2 fields; want 7"},
		{"bad JSON line before the last", "{\"id\":1}\n{\"id\":\"e2\"}\n", func(s string) error {
			_, err := ReadJSONLines[EventRecord](strings.NewReader(s), "events.jsonl")
			return err
		}, "events.jsonl:1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.read(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("read(%q) = %v; want an error containing %q", tt.text, err, tt.want)
			}
		})
	}
}
