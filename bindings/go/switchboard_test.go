package switchboard_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
)

const policies = "../../policies"

// fakeClock is an injected engine clock the test moves by hand.
type fakeClock struct{ ms atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(1767603600000) // Monday 2026-01-05 09:00 UTC
	return c
}
func (c *fakeClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func (c *fakeClock) set(t time.Time)         { c.ms.Store(t.UnixMilli()) }
func quiet(switchboard.LogLevel, string)     {}
func agentDoc(id string) map[string]any {
	return map[string]any{"id": id, "status": "available",
		"devices": map[string]string{"softphone": "sip:" + id + "@pbx.example", "mobile": "tel:+447700900001"}}
}

func open(t *testing.T, dir string, clock *fakeClock, log func(switchboard.LogLevel, string)) *switchboard.Engine {
	t.Helper()
	if log == nil {
		log = quiet
	}
	cfg := switchboard.Config{DataDir: dir, PolicyDir: policies, Sync: switchboard.SyncNone, Log: log}
	if clock != nil {
		cfg.Clock = clock.now
	}
	eng, err := switchboard.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

func provision(t *testing.T, eng *switchboard.Engine, clock *fakeClock) {
	t.Helper()
	must(t)(eng.AccountPut(`{"id":"acme","name":"Acme"}`))
	for _, id := range []string{"ag0", "ag1", "ag2"} {
		must(t)(eng.AgentPut("acme", agentDoc(id)))
		clock.advance(time.Second)
	}
	must(t)(eng.QueuePut("acme", map[string]any{"id": "support", "policy": "longest-idle",
		"ring_timeout": 20, "members": []map[string]any{{"agent": "ag0"}, {"agent": "ag1"}, {"agent": "ag2"}}}))
}

// must(t)(f()) fails the test when f returns an error.
func must(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func find(actions []switchboard.Action, typ switchboard.ActionType, call string) *switchboard.Action {
	for i := range actions {
		if actions[i].Type == typ && (call == "" || actions[i].Call == call) {
			return &actions[i]
		}
	}
	return nil
}

func offer(call string) switchboard.Event {
	return switchboard.Event{Type: switchboard.Offer, Call: call, Queue: "support", Caller: "+442079460001"}
}

func TestVersion(t *testing.T) {
	if v := switchboard.Version(); v != "0.2.0" {
		t.Errorf("Version() = %q", v)
	}
}

func TestRedact(t *testing.T) {
	got, err := switchboard.Redact("caller +44 20 7946 0001 or (030) 1234567, queue q7, 12 s")
	if err != nil || got != "caller [number] or [number], queue q7, 12 s" {
		t.Fatalf("Redact: %q, %v", got, err)
	}
	if got, _ := switchboard.Redact("+12 +34"); got != "[number] [number]" {
		t.Fatalf("Redact of text that grows: %q", got)
	}
	if got, _ := switchboard.Redact(""); got != "" {
		t.Fatalf("Redact of nothing: %q", got)
	}
	var se *switchboard.Error
	if _, err := switchboard.Redact("a\x00b"); !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != "text" {
		t.Fatalf("Redact of a NUL byte: %v", err)
	}
}

func TestCallCycle(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	if l, err := eng.AgentList("acme"); err != nil || len(l) != 3 {
		t.Fatalf("AgentList: %v %v", l, err)
	}
	if l, err := eng.QueueList("acme"); err != nil || len(l) != 1 || l[0]["id"] != "support" {
		t.Fatalf("QueueList: %v %v", l, err)
	}
	if l, err := eng.AccountList(); err != nil || len(l) != 1 || l[0]["id"] != "acme" {
		t.Fatalf("AccountList: %v %v", l, err)
	}

	clock.advance(5 * time.Second)
	acts, err := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "c1", Queue: "support",
		Caller: "+44 20 7946 0001", Attrs: map[string]any{"language": "en"}})
	if err != nil {
		t.Fatal(err)
	}
	ring := find(acts, switchboard.ActionRing, "c1")
	want := switchboard.Action{Type: switchboard.ActionRing, Account: "acme", Call: "c1", Agent: "ag0",
		Device: "softphone", URI: "sip:ag0@pbx.example", Queue: "support", Timeout: 20 * time.Second,
		Attempt: 1}
	if ring == nil || *ring != want {
		t.Fatalf("offer: got %+v, want %+v", acts, want)
	}
	js, _ := json.Marshal(ring)
	if string(js) != `{"type":"ring","account":"acme","call":"c1","agent":"ag0","device":"softphone",`+
		`"uri":"sip:ag0@pbx.example","queue":"support","timeout":20,"attempt":1}` {
		t.Errorf("action JSON: %s", js)
	}
	if a, _ := eng.AgentGet("acme", "ag0"); a["status"] != "reserved" {
		t.Errorf("ringing agent: %v", a["status"])
	}
	clock.advance(4 * time.Second)
	acts, err = eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: "c1", Agent: "ag0",
		Outcome: switchboard.Answered})
	if err != nil || find(acts, switchboard.ActionConnect, "c1") == nil {
		t.Fatalf("answered: %v %v", acts, err)
	}
	if live, err := eng.CallList("acme", ""); err != nil || len(live) != 1 || live[0]["id"] != "c1" ||
		live[0]["state"] != "connected" || live[0]["agent"] != "ag0" || live[0]["caller"] != nil {
		t.Fatalf("CallList: %v %v", live, err)
	}
	if _, err := eng.CallList("acme", "nosuch"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Fatalf("CallList of an unknown queue: %v", err)
	}
	clock.advance(time.Minute)
	acts, err = eng.SubmitJSON("acme", []byte(`{"type":"hangup","call":"c1"}`))
	if end := find(acts, switchboard.ActionEnd, "c1"); err != nil || end == nil || end.Reason != "answered" {
		t.Fatalf("hangup: %v %v", acts, err)
	}
	c, err := eng.CallGet("acme", "c1")
	if err != nil || c["outcome"] != "answered" || c["agent"] != "ag0" || c["talk"] != 60.0 {
		t.Fatalf("CallGet: %v %v", c, err)
	}
	st, err := eng.Stats()
	if err != nil || st["events"].(map[string]any)["offer"] != 1.0 {
		t.Fatalf("Stats: %v %v", st, err)
	}

	must(t)(eng.MemberPut("acme", "support", "ag2", map[string]int{"tier": 2, "position": 9}))
	q, _ := eng.QueueGet("acme", "support")
	found := false
	for _, m := range q["members"].([]any) {
		m := m.(map[string]any)
		if m["agent"] == "ag2" {
			found = m["tier"] == 2.0 && m["position"] == 9.0
		}
	}
	if !found {
		t.Errorf("MemberPut did not change the membership: %v", q["members"])
	}
	if err := eng.MemberDelete("acme", "support", "ag2"); err != nil {
		t.Error(err)
	}
	if err := eng.AgentDelete("acme", "ag2"); err != nil {
		t.Error(err)
	}

	// Everyone away: the call waits, and an agent coming back rings it.
	eng.Submit("acme", switchboard.Event{Type: switchboard.AgentStatus, Agent: "ag0", Status: switchboard.Paused, Reason: "lunch"})
	eng.Submit("acme", switchboard.Event{Type: switchboard.AgentStatus, Agent: "ag1", Status: switchboard.Offline})
	acts, _ = eng.Submit("acme", offer("w1"))
	if find(acts, switchboard.ActionWait, "w1") == nil {
		t.Fatalf("nobody free: %v", acts)
	}
	acts, _ = eng.Submit("acme", switchboard.Event{Type: switchboard.AgentStatus, Agent: "ag1", Status: switchboard.Available})
	if r := find(acts, switchboard.ActionRing, "w1"); r == nil || r.Agent != "ag1" {
		t.Fatalf("agent back: %v", acts)
	}
	acts, _ = eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "w1"})
	if find(acts, switchboard.ActionCancel, "w1") == nil || find(acts, switchboard.ActionEnd, "w1").Reason != "abandoned" {
		t.Fatalf("abandon: %v", acts)
	}
}

// AccountEvict: the account AccountDelete refuses while its calls are live
// goes with them, an ActionEnd for each coming back.
func TestAccountEvict(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	must(t)(eng.QueuePut("acme", map[string]any{"id": "backup", "members": []map[string]any{{"agent": "ag0"}}}))
	for i := 0; i < 5; i++ {
		ev := offer(fmt.Sprintf("e%d", i))
		if i == 4 {
			ev.Queue = "backup"
		}
		must(t)(eng.Submit("acme", ev))
	}
	var se *switchboard.Error
	if err := eng.AccountDelete("acme"); !errors.As(err, &se) || se.Code != switchboard.ErrState || se.Field != "account" {
		t.Fatalf("AccountDelete of an account with live calls: %v", err)
	}
	acts, err := eng.AccountEvict("acme")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range acts {
		got = append(got, fmt.Sprintf("%v:%s:%s:%s:%s", a.Type, a.Call, a.Queue, a.Reason, a.Account))
	}
	sort.Strings(got)
	want := "end:e0:support:account deleted:acme end:e1:support:account deleted:acme " +
		"end:e2:support:account deleted:acme end:e3:support:account deleted:acme " +
		"end:e4:backup:account deleted:acme"
	if strings.Join(got, " ") != want {
		t.Errorf("AccountEvict: an ActionEnd for each live call, ringing or waiting:\n got %v\nwant %v", got, want)
	}
	if _, err := eng.AccountGet("acme"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("the evicted account is gone: %v", err)
	}
	if _, err := eng.AccountEvict("acme"); !errors.As(err, &se) || se.Code != switchboard.ErrNotFound || se.Field != "account" {
		t.Errorf("AccountEvict of an account that does not exist: %v", err)
	}
	if _, err := eng.AccountEvict("acme\x00x"); !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != "account" {
		t.Errorf("AccountEvict of an id holding a NUL byte: %v", err)
	}
	must(t)(eng.AccountPut(`{"id":"idle"}`))
	if acts, err := eng.AccountEvict("idle"); err != nil || len(acts) != 0 {
		t.Errorf("an account without live calls: evicted with no actions: %v %v", acts, err)
	}
	if l, err := eng.AccountList(); err != nil || len(l) != 0 {
		t.Errorf("no account left: %v %v", l, err)
	}
	eng.Close()
	if _, err := eng.AccountEvict("idle"); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("AccountEvict on a closed engine: %v", err)
	}
}

// AgentListPage, QueueListPage, CallListPage: a page in id order and the
// cursor to the next, "" on the last page.
func TestListPages(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	for _, id := range []string{"ag4", "ag3"} {
		must(t)(eng.AgentPut("acme", agentDoc(id)))
	}
	must(t)(eng.QueuePut("acme", map[string]any{"id": "backup", "members": []map[string]any{{"agent": "ag4"}}}))
	must(t)(eng.QueuePut("acme", `{"id":"alpha"}`))
	type pg struct {
		ids, next string
	}
	got := func(items []map[string]any, next string, err error) pg {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return pg{ids(items), next}
	}
	var walked []string
	for after := ""; ; {
		agents, next, err := eng.AgentListPage("acme", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		walked = append(walked, ids(agents))
		if next == "" {
			break
		}
		after = next
	}
	if w := strings.Join(walked, " "); w != "ag0,ag1 ag2,ag3 ag4" {
		t.Errorf("AgentListPage two at a time: %s", w)
	}
	if p := got(eng.AgentListPage("acme", "ag1", 2)); p != (pg{"ag2,ag3", "ag3"}) {
		t.Errorf("AgentListPage after ag1: %v", p)
	}
	if p := got(eng.AgentListPage("acme", "", 0)); p != (pg{"ag0,ag1,ag2,ag3,ag4", ""}) {
		t.Errorf("AgentListPage with no after and no limit: all, no next: %v", p)
	}
	if p := got(eng.AgentListPage("acme", "ag4", 3)); p != (pg{"", ""}) {
		t.Errorf("AgentListPage after the last: %v", p)
	}
	if agents, _, err := eng.AgentListPage("acme", "ag4", 3); err != nil || agents == nil {
		t.Errorf("an empty page is an empty list, not nil: %#v %v", agents, err)
	}
	if p := got(eng.QueueListPage("acme", "", 2)); p != (pg{"alpha,backup", "backup"}) {
		t.Errorf("QueueListPage: %v", p)
	}
	if p := got(eng.QueueListPage("acme", "backup", 2)); p != (pg{"support", ""}) {
		t.Errorf("QueueListPage after backup: %v", p)
	}
	for i := 0; i < 5; i++ {
		ev := offer(fmt.Sprintf("c%d", i))
		if i == 3 {
			ev.Queue = "backup"
		}
		must(t)(eng.Submit("acme", ev))
	}
	if p := got(eng.CallListPage("acme", "", "", 2)); p != (pg{"c0,c1", "c1"}) {
		t.Errorf("CallListPage: %v", p)
	}
	if p := got(eng.CallListPage("acme", "", "c1", 2)); p != (pg{"c2,c3", "c3"}) {
		t.Errorf("CallListPage after c1: %v", p)
	}
	if p := got(eng.CallListPage("acme", "support", "c1", 5)); p != (pg{"c2,c4", ""}) {
		t.Errorf("CallListPage of one queue after c1: %v", p)
	}
	if p := got(eng.CallListPage("acme", "backup", "", 0)); p != (pg{"c3", ""}) {
		t.Errorf("CallListPage of backup: %v", p)
	}
	// The iterators, as Python's agent_pages and Lua's eng:agent_pages.
	walk := func(p *switchboard.Pages[map[string]any]) string {
		t.Helper()
		var out []string
		for p.Next() {
			out = append(out, ids(p.Page()))
		}
		if err := p.Err(); err != nil {
			t.Errorf("walk: %v", err)
		}
		if p.Next() || p.Page() != nil {
			t.Error("Next after the last page: true, or a page")
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		name, want string
		p          *switchboard.Pages[map[string]any]
	}{
		{"AgentPages two at a time", "ag0,ag1 ag2,ag3 ag4", eng.AgentPages("acme", 2)},
		{"AgentPages with no limit", "ag0,ag1,ag2,ag3,ag4", eng.AgentPages("acme", 0)},
		{"AgentPages of five, a full last page", "ag0,ag1,ag2,ag3,ag4", eng.AgentPages("acme", 5)},
		{"QueuePages", "alpha,backup support", eng.QueuePages("acme", 2)},
		{"CallPages", "c0,c1,c2 c3,c4", eng.CallPages("acme", "", 3)},
		{"CallPages of one queue", "c0 c1 c2 c4", eng.CallPages("acme", "support", 1)},
	} {
		if w := walk(c.p); w != c.want {
			t.Errorf("%s: %s, want %s", c.name, w, c.want)
		}
	}
	var zero switchboard.Pages[map[string]any]
	if zero.Next() || zero.Page() != nil || zero.Err() != nil {
		t.Error("a zero Pages: Next true, a page or an error")
	}
	var se *switchboard.Error
	for _, c := range []struct {
		name, code, field string
		p                 *switchboard.Pages[map[string]any]
	}{
		{"AgentPages of an account that does not exist", "SB_ENOTFOUND", "account", eng.AgentPages("nobody", 2)},
		{"CallPages of a queue the account does not have", "SB_ENOTFOUND", "queue", eng.CallPages("acme", "nosuch", 2)},
		{"QueuePages with a negative limit", "SB_EINVAL", "limit", eng.QueuePages("acme", -1)},
	} {
		if c.p.Next() || c.p.Page() != nil || !errors.As(c.p.Err(), &se) || se.Code.Name() != c.code || se.Field != c.field {
			t.Errorf("%s: Next true or Err %v, want %s naming %s", c.name, c.p.Err(), c.code, c.field)
		}
	}
	for _, c := range []struct {
		name, code, field string
		err               error
	}{
		{"an after that is no id", "SB_EINVAL", "after", second3(eng.AgentListPage("acme", "no such id!", 1))},
		{"a call page's after that is no id", "SB_EINVAL", "after", second3(eng.CallListPage("acme", "", "a b", 1))},
		{"a negative limit", "SB_EINVAL", "limit", second3(eng.QueueListPage("acme", "", -1))},
		{"a negative call limit", "SB_EINVAL", "limit", second3(eng.CallListPage("acme", "", "", -1))},
		{"an account that does not exist", "SB_ENOTFOUND", "account", second3(eng.AgentListPage("nobody", "", 1))},
		{"a queue the account does not have", "SB_ENOTFOUND", "queue", second3(eng.CallListPage("acme", "nosuch", "", 1))},
		{"an after holding a NUL byte", "SB_EINVAL", "after", second3(eng.AgentListPage("acme", "ag\x00", 1))},
	} {
		if !errors.As(c.err, &se) || se.Code.Name() != c.code || se.Field != c.field {
			t.Errorf("%s: %v (want %s, field %s)", c.name, c.err, c.code, c.field)
		}
	}
}

func second3[A, B any](_ A, _ B, err error) error { return err }

func TestErrors(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)

	_, err := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "b1", Queue: "support", Caller: "12345"})
	var se *switchboard.Error
	if !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != "caller" || !strings.Contains(se.Message, "E.164") {
		t.Fatalf("bad caller: %#v", err)
	}
	if !errors.Is(err, switchboard.ErrInvalid) || errors.Is(err, switchboard.ErrNotFound) {
		t.Error("errors.Is does not follow the code")
	}
	if got := err.Error(); !strings.HasPrefix(got, "SB_EINVAL: ") || !strings.HasSuffix(got, "(field caller)") {
		t.Errorf("Error() = %q", got)
	}
	if switchboard.ErrNotFound.Name() != "SB_ENOTFOUND" || switchboard.ErrNotFound.Error() != "SB_ENOTFOUND: not found" {
		t.Errorf("Code names: %q %q", switchboard.ErrNotFound.Name(), switchboard.ErrNotFound.Error())
	}
	for code, name := range map[switchboard.Code]string{switchboard.ErrHold: "SB_EHOLD", 0: "SB_OK", 5: "SB_E?",
		1 << 40: "SB_E?", switchboard.ErrInvalid + 1<<32: "SB_E?"} {
		if got := code.Name(); got != name {
			t.Errorf("Code(%d).Name() = %q, want %q (sb_code_name; no code past C's int)", int(code), got, name)
		}
	}

	cases := []struct {
		name  string
		err   error
		code  switchboard.Code
		field string
	}{
		{"unknown queue", second(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "b1", Queue: "nope", Caller: "+15550000001"})), switchboard.ErrNotFound, "queue"},
		{"unknown key", second(eng.SubmitJSON("acme", []byte(`{"type":"hangup","call":"x","colour":"red"}`))), switchboard.ErrInvalid, "colour"},
		// An AgentStatus without a Status took the agent offline; fields
		// another event type takes were left unread.
		{"no status", second(eng.Submit("acme", switchboard.Event{Type: switchboard.AgentStatus, Agent: "ag0"})), switchboard.ErrInvalid, "status"},
		{"a status on a hangup", second(eng.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: "x", Status: switchboard.Paused})), switchboard.ErrInvalid, "status"},
		{"an agent on an offer", second(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "b1", Queue: "support", Caller: "+15550000001", Agent: "ag0"})), switchboard.ErrInvalid, "agent"},
		{"a call on an agent status", second(eng.Submit("acme", switchboard.Event{Type: switchboard.AgentStatus, Agent: "ag0", Status: switchboard.Paused, Call: "c1"})), switchboard.ErrInvalid, "call"},
		{"an outcome on an offer", second(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "b1", Queue: "support", Caller: "+15550000001", Outcome: switchboard.Busy})), switchboard.ErrInvalid, "outcome"},
		{"malformed JSON", second(eng.SubmitJSON("acme", []byte(`{"type":`))), switchboard.ErrInvalid, ""},
		{"empty event", second(eng.SubmitJSON("acme", nil)), switchboard.ErrInvalid, ""},
		{"unknown call", second(eng.CallGet("acme", "b1")), switchboard.ErrNotFound, "call"},
		{"bad device", second(eng.AgentPut("acme", `{"id":"z","devices":{"fax":"x"}}`)), switchboard.ErrInvalid, "devices.fax"},
		{"unknown member", second(eng.QueuePut("acme", `{"id":"bq","members":[{"agent":"ag0"},{"agent":"ghost"}]}`)), switchboard.ErrInvalid, "members[1].agent"},
		{"other account", second(eng.AgentGet("other", "ag0")), switchboard.ErrNotFound, ""},
		{"NUL in an id", second(eng.AgentGet("acme", "ag0\x00x")), switchboard.ErrInvalid, ""},
		{"unencodable document", second(eng.AgentPut("acme", map[string]any{"id": make(chan int)})), switchboard.ErrInvalid, ""},
		// A priority a C int cannot hold is refused, not cut to its low 32
		// bits (1<<32 + 50 as 50, a valid priority).
		{"priority 1<<32 + 50", second(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "p1", Queue: "support", Caller: "+15550000001", Priority: 1<<32 + 50})), switchboard.ErrInvalid, "priority"},
		{"priority -1<<32", second(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "p2", Queue: "support", Caller: "+15550000001", Priority: -1 << 32})), switchboard.ErrInvalid, "priority"},
		// The same for an enum: 1<<32 + 1 is no outcome, not answered.
		{"outcome 1<<32 + 1", second(eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: "p3", Agent: "ag0", Outcome: 1<<32 + switchboard.Answered})), switchboard.ErrInvalid, "outcome"},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.code) || !errors.As(c.err, &se) || (c.field != "" && se.Field != c.field) {
			t.Errorf("%s: got %v, want %s field %q", c.name, c.err, c.code.Name(), c.field)
		}
	}
	if _, err := eng.Submit("acme", offer("d1")); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Submit("acme", offer("d1")); !errors.Is(err, switchboard.ErrExists) {
		t.Errorf("same call twice: %v", err)
	} else if se := (*switchboard.Error)(nil); !errors.As(err, &se) || se.Actions != nil {
		t.Errorf("a refused event's error carries no actions: %#v", err)
	}
	_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: "d1", Agent: "ag2", Outcome: switchboard.Answered})
	if !errors.Is(err, switchboard.ErrState) {
		t.Errorf("ring result from an agent not ringing: %v", err)
	}
	if !errors.Is(err, &switchboard.Error{Code: switchboard.ErrState}) {
		t.Error("errors.Is with an *Error target compares codes")
	}
	eng.Close()
	if _, err := eng.Stats(); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("closed engine: %v", err)
	}
	if err := eng.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := switchboard.Open(switchboard.Config{}); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("Open without a data dir: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestNumbersTooBig: a number the engine's JSON cannot hold (past int64
// for whole numbers: a uint64, a json.Number, a big integer in JSON text)
// is refused naming its field and saying what is wrong with it, as any
// other bad value is, not as "malformed JSON" with no field; a whole
// float64 past an integer field's range is out of that range, not "not an
// integer". Nothing is written.
func TestNumbersTooBig(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	cases := []struct {
		name, field, says string
		err               error
	}{
		{"an agent's weight uint64(1<<64 - 1)", "weight", "too big a number",
			second(eng.AgentPut("acme", map[string]any{"id": "big", "weight": uint64(1<<64 - 1)}))},
		{"a member's position json.Number(-10^20)", "members[1].position", "too small a number",
			second(eng.QueuePut("acme", map[string]any{"id": "bq", "members": []map[string]any{
				{"agent": "ag0"}, {"agent": "ag1", "position": json.Number("-100000000000000000000")}}}))},
		{"an offer's attrs holding uint64(1<<63)", "attrs.vip", "too big a number",
			second(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "n1", Queue: "support",
				Caller: "+15550000001", Attrs: map[string]any{"vip": uint64(1 << 63)}}))},
		{"10^30 in JSON text", "priority", "too big a number",
			second(eng.SubmitJSON("acme", []byte(`{"type":"offer","call":"n1","queue":"support","priority":1000000000000000000000000000000}`)))},
		{"a ring_timeout of float64 1e30", "ring_timeout", "between",
			second(eng.QueuePut("acme", map[string]any{"id": "bq", "ring_timeout": 1e30}))},
	}
	for _, c := range cases {
		var se *switchboard.Error
		if !errors.As(c.err, &se) || se.Code != switchboard.ErrInvalid || se.Field != c.field ||
			!strings.Contains(se.Message, c.says) || strings.Contains(se.Message, "malformed") {
			t.Errorf("%s: got %v, want SB_EINVAL on %s saying %q", c.name, c.err, c.field, c.says)
		}
	}
	if _, err := eng.AgentGet("acme", "big"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("the agent refused was made: %v", err)
	}
	if _, err := eng.QueueGet("acme", "bq"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("the queue refused was made: %v", err)
	}
	if _, err := eng.CallGet("acme", "n1"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("the offer refused made a call: %v", err)
	}
}

func TestClockAndTick(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	if _, ok := eng.NextDeadline(); ok {
		t.Error("a deadline before any call")
	}
	clock.advance(10 * time.Second)
	start := clock.now()
	acts, err := eng.Submit("acme", offer("t1"))
	if err != nil {
		t.Fatal(err)
	}
	first := find(acts, switchboard.ActionRing, "t1").Agent
	if d, ok := eng.NextDeadline(); !ok || !d.Equal(start.Add(20*time.Second)) {
		t.Fatalf("NextDeadline = %v %v, want %v", d, ok, start.Add(20*time.Second))
	}
	clock.set(start.Add(20*time.Second - time.Millisecond))
	if acts, err := eng.Tick(); err != nil || len(acts) != 0 {
		t.Fatalf("early tick: %v %v", acts, err)
	}
	clock.set(start.Add(20 * time.Second))
	acts, err = eng.Tick()
	if c := find(acts, switchboard.ActionCancel, "t1"); err != nil || c == nil || c.Agent != first {
		t.Fatalf("tick at the ring timeout: %v %v", acts, err)
	}
	if find(acts, switchboard.ActionRing, "t1") == nil {
		t.Fatalf("the call is not decided again: %v", acts)
	}
	a, _ := eng.AgentGet("acme", first)
	if a["stats"].(map[string]any)["no_answers"] != 1.0 {
		t.Errorf("no_answers: %v", a["stats"])
	}
}

// slowWait spins (a millisecond or so of work), then waits 1 s.
const slowWait = `local P = {}
function P.route(call, agents, ctx)
  local x = 0
  for i = 1, 150000 do x = x + i end
  return { wait = 1 }
end
return P
`

func TestTickFor(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	due := func() bool { d, ok := eng.NextDeadline(); return ok && !d.After(clock.now()) }
	clock.advance(10 * time.Second)
	start := clock.now()
	acts, err := eng.Submit("acme", offer("f1"))
	if err != nil {
		t.Fatal(err)
	}
	first := find(acts, switchboard.ActionRing, "f1").Agent
	clock.set(start.Add(20 * time.Second))
	acts, more, err := eng.TickFor(time.Minute)
	if c := find(acts, switchboard.ActionCancel, "f1"); err != nil || c == nil || c.Agent != first ||
		find(acts, switchboard.ActionRing, "f1") == nil {
		t.Fatalf("TickFor(1m) at the ring timeout: %v %v, want the cancel and the next ring", acts, err)
	}
	if more || due() {
		t.Errorf("TickFor(1m) with time to spare: more %v, timers still due %v", more, due())
	}
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "f1"}))

	// Calls whose policy costs a millisecond or more, all waking at once.
	must(t)(eng.PolicyPut("acme", "slow", []byte(slowWait), nil))
	must(t)(eng.QueuePut("acme", `{"id":"slow","policy":"slow"}`))
	for i := 0; i < 8; i++ {
		must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: fmt.Sprintf("s%d", i),
			Queue: "slow", Caller: "+442079460005"}))
	}
	clock.advance(time.Second)
	var se *switchboard.Error
	if _, more, err := eng.TickFor(-time.Millisecond); !errors.As(err, &se) || se.Code != switchboard.ErrInvalid ||
		se.Field != "budget" || more {
		t.Errorf("TickFor(-1ms): %v, more %v; want ErrInvalid field budget", err, more)
	}
	if !due() {
		t.Fatal("a refused TickFor fired the wake-ups")
	}
	// Under a millisecond is a share of one, not "no limit".
	_, more, err = eng.TickFor(time.Microsecond)
	if err != nil || !more || !due() {
		t.Fatalf("TickFor(1µs): %v, more %v, still due %v; want wake-ups left", err, more, due())
	}
	calls := 0
	for ; more && calls < 20; calls++ {
		if _, more, err = eng.TickFor(time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if more || due() {
		t.Errorf("TickFor(1ms) called %d more times: more %v, still due %v", calls, more, due())
	}
	clock.advance(time.Second)
	if _, more, err = eng.TickFor(0); err != nil || more || due() {
		t.Errorf("TickFor(0), no limit: %v, more %v, still due %v", err, more, due())
	}
	for i := 0; i < 8; i++ {
		must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: fmt.Sprintf("s%d", i)}))
	}
	eng.Close()
	if _, _, err := eng.TickFor(time.Second); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("TickFor after Close: %v", err)
	}
}

const routeFirst = `-- rings the first agent in position order
local P = {}
function P.route(call, agents, ctx)
  local best
  for _, a in ipairs(agents) do
    if not best or a.position < best.position then best = a end
  end
  if not best then return { wait = 10 } end
  return { ring = best.id, device = "mobile", timeout = 7 }
end
return P
`

const failing = `local P = {}
function P.route(call, agents, ctx)
  local t = nil
  return { ring = t.id }
end
return P
`

var cases = []map[string]any{{"name": "rings the first position",
	"agents": []map[string]any{
		{"id": "b", "position": 2, "devices": map[string]string{"mobile": "tel:+447700900002"}},
		{"id": "a", "position": 1, "devices": map[string]string{"mobile": "tel:+447700900001"}}},
	"expect": map[string]any{"action": "ring", "agents": []string{"a"}, "timeout": 7}}}

func TestPolicies(t *testing.T) {
	clock := newClock()
	var mu sync.Mutex
	var logs []string
	eng := open(t, t.TempDir(), clock, func(l switchboard.LogLevel, line string) {
		mu.Lock()
		logs = append(logs, l.String()+" "+line)
		mu.Unlock()
	})
	provision(t, eng, clock)
	v, err := eng.PolicyPut("acme", "first", []byte(routeFirst), cases)
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(v) {
		t.Fatalf("PolicyPut: %q %v", v, err)
	}
	pl, err := eng.PolicyList("acme")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]switchboard.PolicyInfo{}
	for _, p := range pl {
		got[p.Name] = p
	}
	if got["first"].Version != v || got["first"].Source != "account" || got["longest-idle"].Source != "shared" {
		t.Errorf("PolicyList: %+v", pl)
	}
	if g, err := eng.PolicyGet("acme", "first"); err != nil || g["source"] != "account" || g["code"] != routeFirst {
		t.Errorf("PolicyGet: %v %v", g, err)
	}
	if _, err := eng.PolicyGet("acme", "no-such"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("PolicyGet of no policy: %v", err)
	}
	sv, err := eng.PolicyPutIf("acme", "spare", []byte(routeFirst), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.PolicyPutIf("acme", "spare", []byte(routeFirst+"-- 2\n"), nil, ""); !errors.Is(err, switchboard.ErrState) {
		t.Errorf("PolicyPutIf \"\" over an upload: %v", err)
	}
	sv2, err := eng.PolicyPut("acme", "spare", []byte(routeFirst+"-- 2\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := eng.PolicyVersions("acme", "spare", 0, 0); err != nil || len(h["versions"].([]any)) != 2 ||
		h["versions"].([]any)[0].(map[string]any)["version"] != sv2 {
		t.Errorf("PolicyVersions: %v %v", h, err)
	}
	if h, err := eng.PolicyVersions("acme", "spare", 0, 1); err != nil || h["next"] == nil {
		t.Errorf("PolicyVersions, a page of 1: %v %v", h, err)
	}
	if o, err := eng.PolicyVersion("acme", "spare", sv); err != nil || o["code"] != routeFirst {
		t.Errorf("PolicyVersion of the first: %v %v", o, err)
	}
	if _, err := eng.PolicyVersion("acme", "spare", "XYZ"); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("PolicyVersion of a malformed version: %v", err)
	}
	if _, err := eng.PolicyVersionsForget("acme", "spare", sv2); !errors.Is(err, switchboard.ErrState) {
		t.Errorf("PolicyVersionsForget of the version in use: %v", err)
	}
	if f, err := eng.PolicyVersionsForget("acme", "spare", ""); err != nil || f["forgotten"] != float64(1) {
		t.Errorf("PolicyVersionsForget of all but the newest: %v %v", f, err)
	}
	if sv, err = eng.PolicyPut("acme", "spare", []byte(routeFirst), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.PolicyDeleteIf("acme", "spare", "0000000000000000"); !errors.Is(err, switchboard.ErrState) {
		t.Errorf("PolicyDeleteIf of another version: %v", err)
	}
	if d, err := eng.PolicyDeleteIf("acme", "spare", sv); err != nil || d["deleted"] != true {
		t.Errorf("PolicyDeleteIf of the version there: %v %v", d, err)
	}
	if _, err := eng.PolicyPut("acme", "spare", []byte(routeFirst), nil); err != nil {
		t.Fatal(err)
	}
	if d, err := eng.PolicyDelete("acme", "spare"); err != nil || d["deleted"] != true {
		t.Errorf("PolicyDelete: %v %v", d, err)
	}
	if _, err := eng.PolicyDelete("acme", "longest-idle"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("PolicyDelete of a shared policy: %v", err)
	}
	must(t)(eng.QueuePut("acme", `{"id":"fq","policy":"first","members":[{"agent":"ag1","position":2},{"agent":"ag2","position":1}]}`))
	acts, _ := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "p1", Queue: "fq", Caller: "+15550000001"})
	if r := find(acts, switchboard.ActionRing, "p1"); r == nil || r.Agent != "ag2" || r.Device != "mobile" || r.Timeout != 7*time.Second {
		t.Fatalf("the uploaded policy decides: %+v", acts)
	}
	pl, err = eng.PolicyList("acme")
	for _, p := range pl {
		if p.Name == "first" && (p.LoadedVersion != v || p.ShadowsShared) {
			t.Errorf("PolicyList after first routed: loaded_version %q (want %q), shadows_shared %v", p.LoadedVersion, v, p.ShadowsShared)
		}
	}

	// The upload's whole answer (Python's policy_put, Lua's eng:policy_put):
	// the version replaced and what PolicyCheck faults, stored all the same.
	lint := "local P = {}\nfunction P.route(call, agents, ctx)\n" +
		"  if call.attempts > 5 then retrun {} end\n  return { wait = 5 }\nend\nreturn P\n"
	up, err := eng.PolicyPutReport("acme", "lint", []byte(lint), nil, nil)
	if err != nil || up.Name != "lint" || up.Version == "" || up.Previous != "" || len(up.Warnings) != 1 ||
		!strings.Contains(up.Warnings[0], ":3: accessing undefined variable 'retrun'") {
		t.Errorf("PolicyPutReport of a policy with a typo: %+v %v", up, err)
	}
	again := up.Version
	up, err = eng.PolicyPutReport("acme", "lint", []byte(routeFirst), nil, &again)
	if err != nil || up.Previous != again || up.Version == again || len(up.Warnings) != 0 {
		t.Errorf("PolicyPutReport over that version: %+v %v", up, err)
	}
	if _, err := eng.PolicyPutReport("acme", "lint", []byte(routeFirst), nil, &again); !errors.Is(err, switchboard.ErrState) {
		t.Errorf("PolicyPutReport over a version no longer there: %v", err)
	}

	_, err = eng.PolicyPut("acme", "broken", []byte("local P = {\nfunction P.route(\n"), nil)
	var se *switchboard.Error
	if !errors.As(err, &se) || se.Code != switchboard.ErrPolicy || se.Field != "source" ||
		!regexp.MustCompile(`broken\S*:\d+:`).MatchString(se.Message) {
		t.Errorf("broken policy: %v", err)
	}
	_, err = eng.PolicyPut("acme", "first", []byte(strings.Replace(routeFirst, "timeout = 7", "timeout = 9", 1)), cases)
	if !errors.Is(err, switchboard.ErrPolicy) {
		t.Errorf("policy failing its cases: %v", err)
	}

	if _, err := eng.PolicyPut("acme", "failing", []byte(failing), nil); err != nil {
		t.Fatal(err)
	}
	must(t)(eng.QueuePut("acme", `{"id":"failq","policy":"failing","members":[{"agent":"ag0"}]}`))
	acts, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "f1", Queue: "failq", Caller: "+15550000002"})
	if r := find(acts, switchboard.ActionRing, "f1"); err != nil || r == nil || r.Agent != "ag0" {
		t.Fatalf("a failing policy falls back: %v %v", acts, err)
	}
	st, _ := eng.Stats()
	if st["decisions"].(map[string]any)["fallback"] != 1.0 || st["policy"].(map[string]any)["failures"] != 1.0 {
		t.Errorf("fallback not counted: %v", st)
	}
	mu.Lock()
	joined := strings.Join(logs, "\n")
	mu.Unlock()
	if !strings.Contains(joined, "failing.lua:4:") {
		t.Errorf("no file:line in the log:\n%s", joined)
	}
	if n, err := eng.Reload(); err != nil || n != 0 {
		t.Errorf("Reload: %d %v", n, err)
	}
}

// TestReloadReport: the reload's whole answer (Python's reload(), Lua's
// eng:reload()): each policy changed with its versions, and the warning of
// one that loads all the same. Reload gave the count alone.
func TestReloadReport(t *testing.T) {
	pdir := t.TempDir()
	put := func(name, src string) {
		if err := os.WriteFile(filepath.Join(pdir, name+".lua"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put("p", "local P = {}\nfunction P.route(call, agents, ctx) return { wait = 1 } end\nreturn P\n")
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), PolicyDir: pdir, Sync: switchboard.SyncNone, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if r, err := eng.ReloadReport(); err != nil || r.Changed != 0 || len(r.Policies) != 0 || len(r.Warnings) != 0 {
		t.Errorf("nothing changed: %+v %v", r, err)
	}
	put("p", "local P = {}\nfunction P.route(call, agents, ctx) return { wait = 2 } end\nreturn P\n")
	put("lintme", "local P = {}\nfunction P.route(call, agents, ctx)\n"+
		"  if call.attempts > 5 then retrun {} end\n  return { wait = 5 }\nend\nreturn P\n")
	r, err := eng.ReloadReport()
	if err != nil || r.Changed != 2 || len(r.Policies) != 2 {
		t.Fatalf("two changed: %+v %v", r, err)
	}
	for _, p := range r.Policies {
		if p.Version == "" || (p.Name == "p") != (p.Previous != "") {
			t.Errorf("policy %+v: want its version, and a previous one for p alone", p)
		}
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "lintme.lua:3: accessing undefined variable 'retrun'") {
		t.Errorf("the warning: %q", r.Warnings)
	}
	os.Remove(filepath.Join(pdir, "lintme.lua"))
	if r, err := eng.ReloadReport(); err != nil || r.Changed != 1 || len(r.Policies) != 1 ||
		r.Policies[0] != (switchboard.ReloadedPolicy{Name: "lintme", Previous: r.Policies[0].Previous}) || r.Policies[0].Previous == "" {
		t.Errorf("a policy removed: no version: %+v %v", r, err)
	}
	if n, err := eng.Reload(); err != nil || n != 0 {
		t.Errorf("Reload after: %d %v", n, err)
	}
}

func TestPolicyTools(t *testing.T) {
	if err := switchboard.PolicyCheck("first.lua", []byte(routeFirst)); err != nil {
		t.Errorf("PolicyCheck: %v", err)
	}
	err := switchboard.PolicyCheck("lint.lua", []byte("x = 1\nlocal P = {}\nfunction P.route(call, agents, ctx) return {} end\nreturn P\n"))
	if !errors.Is(err, switchboard.ErrPolicy) || !strings.Contains(err.Error(), "lint.lua:1: ") {
		t.Errorf("lint: %v", err)
	}
	// The field Python's PolicyError and Lua's fourth value give too.
	var pe *switchboard.Error
	if !errors.As(err, &pe) || pe.Field != "source" {
		t.Errorf("lint: %#v, want the field \"source\"", err)
	}
	cj, _ := json.Marshal(cases)
	rep, err := switchboard.PolicyTest("first.lua", []byte(routeFirst), cj)
	if err != nil || rep.Passed != 1 || rep.Failed != 0 {
		t.Errorf("PolicyTest: %+v %v", rep, err)
	}
	bad := strings.Replace(string(cj), `"timeout":7`, `"timeout":8`, 1)
	rep, err = switchboard.PolicyTest("first.lua", []byte(routeFirst), []byte(bad))
	if err != nil || rep.Failed != 1 || rep.Cases[0].OK || len(rep.Cases[0].Got) == 0 {
		t.Errorf("failing case: %+v %v", rep, err)
	}
	if _, err := switchboard.PolicyTest("first.lua", []byte(routeFirst), []byte("[{")); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("malformed cases: %v", err)
	}

	// Under the budgets an engine would run them with (sb_policy_check_cfg,
	// sb_policy_test_cfg): 10,000 load instructions for a budget of 1,000.
	slow := strings.Replace(routeFirst, "  local best\n", "  local n = 0\n  for i = 1, 20000 do n = n + i end\n  local best\n", 1)
	loop := []byte("local n = 0\nfor i = 1, 20000 do n = n + i end\n" + slow)
	tight := switchboard.Config{PolicyInstructions: 1000}
	if err := switchboard.PolicyCheckConfig(switchboard.Config{}, "loop.lua", loop); err != nil {
		t.Errorf("PolicyCheckConfig with the default budgets: %v", err)
	}
	if err := switchboard.PolicyCheckConfig(tight, "loop.lua", loop); !errors.Is(err, switchboard.ErrPolicy) ||
		!strings.Contains(err.Error(), "instruction budget") {
		t.Errorf("PolicyCheckConfig with 1,000 instructions: %v", err)
	}
	if err := switchboard.PolicyCheckConfig(switchboard.Config{PolicyInstructions: -1, PolicyWallTime: -1, PolicyMemory: -1},
		"loop.lua", loop); err != nil {
		t.Errorf("PolicyCheckConfig with the budgets switched off: %v", err)
	}
	if rep, err := switchboard.PolicyTestConfig(switchboard.Config{}, "slow.lua", []byte(slow), cj); err != nil || rep.Failed != 0 {
		t.Errorf("PolicyTestConfig with the default budgets: %+v %v", rep, err)
	}
	if rep, err := switchboard.PolicyTestConfig(tight, "slow.lua", []byte(slow), cj); err != nil || rep.Failed != 1 ||
		!strings.Contains(string(rep.Cases[0].Got), "instruction budget") {
		t.Errorf("PolicyTestConfig with 1,000 instructions: %+v %v", rep, err)
	}
	var se *switchboard.Error
	if err := switchboard.PolicyCheckConfig(tight, "loop\x00.lua", loop); !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != "name" {
		t.Errorf("PolicyCheckConfig of a name holding a NUL byte: %v", err)
	}
	if _, err := switchboard.PolicyTestConfig(tight, "slow.lua", []byte(slow), []byte("[{")); !errors.As(err, &se) ||
		se.Code != switchboard.ErrInvalid || se.Field != "cases" {
		t.Errorf("PolicyTestConfig of malformed cases: %v", err)
	}
	pub, sec, err := switchboard.PolicyKeygen()
	if err != nil || len(pub) != 64 || len(sec) != 128 {
		t.Fatalf("PolicyKeygen: %q %q %v", pub, sec, err)
	}
	signed, err := switchboard.PolicySign([]byte(routeFirst), sec)
	if err != nil || !strings.HasPrefix(string(signed), routeFirst) || !strings.Contains(string(signed), "--@signature ") {
		t.Fatalf("PolicySign: %v", err)
	}
	if err := switchboard.PolicyVerify(signed, pub); err != nil {
		t.Errorf("PolicyVerify of the signed source with its public key: %v", err)
	}
	other, _, err := switchboard.PolicyKeygen()
	if err != nil {
		t.Fatal(err)
	}
	const notVerified = "the signature does not verify with the key"
	for _, c := range []struct {
		what, source, key, field, message string
		code                              switchboard.Code
	}{
		{"a source changed after signing", strings.Replace(string(signed), "return", "return ", 1), pub,
			"signature", notVerified, switchboard.ErrPolicy},
		{"another key's public key", string(signed), other, "signature", notVerified, switchboard.ErrPolicy},
		{"text after the signature line", string(signed) + "x = 1\n", pub, "signature",
			"changed after signing", switchboard.ErrPolicy},
		{"an unsigned source", routeFirst, pub, "signature", "unsigned", switchboard.ErrPolicy},
		{"an empty source", "", pub, "signature", "unsigned", switchboard.ErrPolicy},
		{"a key that is not 64 hex characters (the secret one)", string(signed), sec, "public_key",
			"the public key must be 64 hex characters", switchboard.ErrInvalid},
	} {
		err := switchboard.PolicyVerify([]byte(c.source), c.key)
		var se *switchboard.Error
		if !errors.As(err, &se) || se.Code != c.code || se.Field != c.field || !strings.HasPrefix(se.Message, c.message) {
			t.Errorf("PolicyVerify, %s: %v, want %s (field %s) %q", c.what, err, c.code.Name(), c.field, c.message)
		}
	}
	if err := switchboard.PolicyVerify(signed, pub+"\x00"); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("PolicyVerify with a NUL byte in the key: %v, want ErrInvalid", err)
	}
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone, Log: quiet,
		RequireSignedPolicies: true, PolicyPublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	if _, err := eng.PolicyPut("acme", "first", signed, nil); err != nil {
		t.Errorf("signed policy refused: %v", err)
	}
	if _, err := eng.PolicyPut("acme", "unsigned", []byte(routeFirst), nil); err == nil {
		t.Error("unsigned policy loaded where signatures are required")
	}
}

func TestAPIKeys(t *testing.T) {
	eng := open(t, t.TempDir(), nil, nil)
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	id, key, err := eng.APIKeyCreate("acme")
	if err != nil || id == "" || !strings.HasPrefix(key, "sbk_") {
		t.Fatalf("APIKeyCreate: %q %q %v", id, key, err)
	}
	if !eng.APIKeyVerify("acme", key) || eng.APIKeyVerify("acme", key+"x") || eng.APIKeyVerify("nobody", key) ||
		eng.APIKeyVerify("acme", "") {
		t.Error("APIKeyVerify")
	}
	if err := eng.APIKeyRevoke("acme", id); err != nil || eng.APIKeyVerify("acme", key) {
		t.Errorf("APIKeyRevoke: %v", err)
	}
	if keys, err := eng.APIKeyList("acme"); err != nil || keys == nil || len(keys) != 0 {
		t.Errorf("APIKeyList with none left: %#v %v, want an empty list", keys, err)
	}
	id1, _, err1 := eng.APIKeyCreate("acme")
	id2, key2, err2 := eng.APIKeyCreate("acme")
	if err1 != nil || err2 != nil {
		t.Fatalf("APIKeyCreate: %v %v", err1, err2)
	}
	keys, err := eng.APIKeyList("acme")
	got := []string{}
	for _, k := range keys {
		got = append(got, k.KeyID)
	}
	sort.Strings(got)
	want := []string{id1, id2}
	sort.Strings(want)
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("APIKeyList: %v %v, want the two keys' ids %v", got, err, want)
	}
	if err := eng.APIKeyRevoke("acme", id1); err != nil {
		t.Fatalf("APIKeyRevoke: %v", err)
	}
	keys, err = eng.APIKeyList("acme")
	if err != nil || len(keys) != 1 || keys[0].KeyID != id2 || !eng.APIKeyVerify("acme", key2) {
		t.Errorf("APIKeyList after a revoke: %v %v, want %s alone (still valid)", keys, err, id2)
	}
	_, err = eng.APIKeyList("nobody")
	var se *switchboard.Error
	if !errors.As(err, &se) || se.Code != switchboard.ErrNotFound || se.Field != "account" {
		t.Errorf("APIKeyList of an unknown account: %v, want ErrNotFound naming account", err)
	}
}

// Two engines on one data directory, and goroutines racing on both: LMDB
// serialises the writers, so no agent is ever handed two calls.
func TestTwoEnginesOneDataDir(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	a := open(t, dir, clock, nil)
	b := open(t, dir, clock, nil)
	provision(t, a, clock)
	if acc, err := b.AccountGet("acme"); err != nil || acc["id"] != "acme" {
		t.Fatalf("B reads A's account: %v %v", acc, err)
	}
	acts, _ := a.Submit("acme", offer("s1"))
	who := find(acts, switchboard.ActionRing, "s1").Agent
	if c, _ := b.CallGet("acme", "s1"); c["state"] != "ringing" {
		t.Errorf("B sees the call: %v", c["state"])
	}
	if _, err := b.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: "s1", Agent: who, Outcome: switchboard.Answered}); err != nil {
		t.Fatal(err)
	}
	if acts, err := a.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: "s1"}); err != nil || find(acts, switchboard.ActionEnd, "s1") == nil {
		t.Fatalf("A hangs up B's answered call: %v %v", acts, err)
	}
	v, err := a.PolicyPut("acme", "first", []byte(routeFirst), nil)
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := b.PolicyList("acme")
	ok := false
	for _, p := range pl {
		ok = ok || (p.Name == "first" && p.Version == v)
	}
	if !ok {
		t.Errorf("A's policy upload did not reach B: %+v", pl)
	}

	var mu sync.Mutex
	booked := map[string]string{}
	var double []string
	var errs []error
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		eng := a
		if g%2 == 1 {
			eng = b
		}
		wg.Add(1)
		go func(g int, eng *switchboard.Engine) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				call := fmt.Sprintf("g%d-%d", g, i)
				acts, err := eng.Submit("acme", offer(call))
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				r := find(acts, switchboard.ActionRing, call)
				if r == nil {
					eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: call})
					continue
				}
				agent := r.Agent
				mu.Lock()
				if other, busy := booked[agent]; busy {
					double = append(double, agent+": "+other+" and "+call)
				}
				booked[agent] = call
				mu.Unlock()
				_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: call, Agent: agent, Outcome: switchboard.Answered})
				mu.Lock()
				delete(booked, agent)
				mu.Unlock()
				if err == nil {
					_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: call})
				}
				if err != nil && !errors.Is(err, switchboard.ErrNotFound) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}(g, eng)
	}
	wg.Wait()
	if len(errs) > 0 || len(double) > 0 {
		t.Fatalf("errors %v, double-booked %v", errs, double)
	}
	agents, _ := a.AgentList("acme")
	for _, ag := range agents {
		if ag["status"] != "available" {
			t.Errorf("%v is %v at the end", ag["id"], ag["status"])
		}
	}
}

func TestLogLevelRange(t *testing.T) {
	for _, l := range []switchboard.LogLevel{-1, switchboard.LogDebug + 1, 9} {
		_, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Log: quiet, LogLevel: l})
		var se *switchboard.Error
		if !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != "log_level" ||
			!strings.Contains(se.Message, "LogDebug 4") {
			t.Errorf("LogLevel %d: %v (want ErrInvalid on log_level in Go's numbering)", l, err)
		}
	}
}

func TestDeferAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	eng, err := switchboard.Open(switchboard.Config{DataDir: dir, Sync: switchboard.SyncDefer, Log: quiet,
		PolicyInstructions: -1, PolicyWallTime: -1, PolicyMemory: -1, QuarantineAfter: -1, LogLevel: switchboard.LogWarn})
	if err != nil {
		t.Fatal(err)
	}
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	if err := eng.Sync(); err != nil {
		t.Error(err)
	}
	eng.Close()
	eng, err = switchboard.Open(switchboard.Config{DataDir: dir, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if acc, err := eng.AccountGet("acme"); err != nil || acc["id"] != "acme" {
		t.Errorf("after reopening: %v %v", acc, err)
	}
	if err := eng.AccountDelete("acme"); err != nil {
		t.Error(err)
	}
	if _, err := eng.AccountGet("acme"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("deleted account: %v", err)
	}
}

// SyncProgress with SyncDefer: a commit is written but not durable until the
// next commit's own sync covers it, or Sync; where a SyncNone engine opened
// the directory first, ordered is false and that is no error.
func TestSyncProgress(t *testing.T) {
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncDefer, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w0, _, _, err := eng.SyncProgress()
	if err != nil {
		t.Fatal(err)
	}
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	w1, d1, o1, err := eng.SyncProgress()
	if err != nil || !o1 || w1 <= w0 || d1 >= w1 {
		t.Errorf("after a deferred commit: written %d (before %d), durable %d, ordered %v, %v", w1, w0, d1, o1, err)
	}
	must(t)(eng.AgentPut("acme", agentDoc("alice")))
	w2, d2, o2, err := eng.SyncProgress()
	if err != nil || !o2 || w2 <= w1 || d2 < w1 {
		t.Errorf("the next commit's own sync should make the first durable: written %d, durable %d, first %d, ordered %v, %v",
			w2, d2, w1, o2, err)
	}
	if err := eng.Sync(); err != nil {
		t.Fatal(err)
	}
	w3, d3, o3, err := eng.SyncProgress()
	if err != nil || !o3 || w3 != w2 || d3 < w3 {
		t.Errorf("after Sync: written %d, durable %d, ordered %v, %v", w3, d3, o3, err)
	}
	eng.Close()
	if _, _, _, err := eng.SyncProgress(); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("SyncProgress on a closed engine: %v", err)
	}

	dir := t.TempDir()
	none, err := switchboard.Open(switchboard.Config{DataDir: dir, Sync: switchboard.SyncNone, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer none.Close()
	def, err := switchboard.Open(switchboard.Config{DataDir: dir, Sync: switchboard.SyncDefer, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	must(t)(def.AccountPut(`{"id":"acme"}`))
	if w, d, ordered, err := def.SyncProgress(); err != nil || ordered || d != 0 {
		t.Errorf("a SyncNone engine opened the directory first: written %d, durable %d, ordered %v, %v (want not ordered, durable 0, no error)",
			w, d, ordered, err)
	}
}

func TestClockPanicFallsBack(t *testing.T) {
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone, Log: quiet,
		PolicyDir: policies, Clock: func() time.Time { panic("no clock") }})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	acc, _ := eng.AccountGet("acme")
	if ms, _ := acc["created_ms"].(float64); time.Since(time.UnixMilli(int64(ms))) > time.Hour {
		t.Errorf("created_ms %v is not the system time", acc["created_ms"])
	}
}

// TestClockFailureLogged: a Clock that panics or returns a time the engine
// cannot hold is said through Log, a LogError line for each reading, as the
// Python and Lua bindings say it through theirs; before, Go wrote one line
// on stderr for the whole process and Log never heard of it.
func TestClockFailureLogged(t *testing.T) {
	for _, c := range []struct {
		name  string
		clock func() time.Time
		want  string
	}{
		{"a panic", func() time.Time { panic("no clock at +442079460001") },
			"the Clock function panicked: no clock at [number]; this reading is the system time"},
		{"the zero time", func() time.Time { return time.Time{} },
			"the Clock function returned 0001-01-01T00:00:00Z, before 1970 or past what the engine's milliseconds hold; this reading is the system time"},
	} {
		var mu sync.Mutex
		var lines []string
		eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone,
			Clock: c.clock, Log: func(level switchboard.LogLevel, line string) {
				mu.Lock()
				defer mu.Unlock()
				lines = append(lines, level.String()+" "+line)
			}})
		if err != nil {
			t.Fatal(err)
		}
		must(t)(eng.AccountPut(`{"id":"acme"}`))
		must(t)(eng.AccountPut(`{"id":"acme"}`))
		eng.Close()
		n := 0
		for _, l := range lines {
			if l == "error "+c.want {
				n++
			}
		}
		if n < 2 {
			t.Errorf("%s: %d error lines %q through Log for two puts, want one a reading; got %q", c.name, n, c.want, lines)
		}
	}
}

// TestManualClock: a ManualClock's Now as Config.Clock dates what the engine
// does and fires its timers as it is moved (Lua's clock = ms with
// eng:set_clock, Python's clock=<ms> with set_clock).
func TestManualClock(t *testing.T) {
	t0 := time.UnixMilli(1767571200000)
	clk := switchboard.NewManualClock(t0)
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone,
		PolicyDir: policies, Log: quiet, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	if acc, _ := eng.AccountGet("acme"); acc["created_ms"] != float64(t0.UnixMilli()) {
		t.Errorf("created_ms %v, want the clock's %d", acc["created_ms"], t0.UnixMilli())
	}
	must(t)(eng.AgentPut("acme", agentDoc("ag0")))
	must(t)(eng.QueuePut("acme", `{"id":"support","ring_timeout":20,"members":[{"agent":"ag0"}]}`))
	must(t)(eng.Submit("acme", offer("m1")))
	if d, ok := eng.NextDeadline(); !ok || !d.Equal(t0.Add(20*time.Second)) {
		t.Errorf("NextDeadline %v %v, want 20 s on", d, ok)
	}
	if now := clk.Advance(20 * time.Second); !now.Equal(t0.Add(20 * time.Second)) {
		t.Errorf("Advance: %v", now)
	}
	acts, err := eng.Tick()
	if err != nil || find(acts, switchboard.ActionCancel, "m1") == nil {
		t.Errorf("Tick after Advance: the ring timeout: %+v %v", acts, err)
	}
	clk.Set(t0)
	if !clk.Now().Equal(t0) {
		t.Errorf("Set: %v", clk.Now())
	}
}

// TestLogBuffer: a LogBuffer's Log as Config.Log keeps the engine's lines
// for Take (Lua's and Python's log = "buffer" with logs()), the last 256.
func TestLogBuffer(t *testing.T) {
	var logs switchboard.LogBuffer
	if got := logs.Take(); len(got) != 0 {
		t.Errorf("a new LogBuffer: %v", got)
	}
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone,
		Clock: func() time.Time { panic("no clock") }, Log: logs.Log})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	got := logs.Take()
	if len(got) == 0 || got[0].Level != switchboard.LogError ||
		!strings.Contains(got[0].Message, "the Clock function panicked: no clock") {
		t.Errorf("the clock's failure in Take: %+v", got)
	}
	if again := logs.Take(); len(again) != 0 {
		t.Errorf("Take forgets what it gave: %+v", again)
	}
	for i := 0; i < 300; i++ {
		logs.Log(switchboard.LogInfo, fmt.Sprint(i))
	}
	got = logs.Take()
	if len(got) != switchboard.LogBufferLines || got[0].Message != "44" || got[255].Message != "299" {
		t.Errorf("300 lines: %d kept, from %v to %v; want the last 256, 44 to 299", len(got), got[0], got[len(got)-1])
	}
}

// TestClockOutOfRangeFallsBack: a Clock returning a time the engine's
// milliseconds cannot hold — before 1970, as the zero time.Time of a clock
// never set is — dated the account, calls and records in year 1
// (created_ms -62135596800000), where no query by time finds them. That
// reading is the system time, as after a panic.
func TestClockOutOfRangeFallsBack(t *testing.T) {
	for _, at := range []time.Time{{}, time.UnixMilli(-1), time.Date(300000000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		at := at
		eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone, Log: quiet,
			PolicyDir: policies, Clock: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now().UnixMilli()
		must(t)(eng.AccountPut(`{"id":"acme"}`))
		after := time.Now().UnixMilli()
		acc, _ := eng.AccountGet("acme")
		if ms, _ := acc["created_ms"].(float64); int64(ms) < before || int64(ms) > after {
			t.Errorf("clock %v: created_ms %v is not the system time (%d..%d)", at, acc["created_ms"], before, after)
		}
		eng.Close()
	}
}

// TestRecordsAfterRefused: a RecordsQuery.After that is no record (an empty
// map, say) sent null cursors, which the engine reads as none: the first
// page came back again, and a reader paging until it ends never ended.
func TestRecordsAfterRefused(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	recordsSetup(t, eng, clock)
	for _, after := range []map[string]any{{}, {"id": "c3"}, {"ended_ms": 1.0}} {
		recs, err := eng.RecordsList("acme", switchboard.RecordsQuery{Limit: 1, After: after})
		var se *switchboard.Error
		if !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != "after" {
			t.Errorf("After %v: %v %v, want ErrInvalid field after", after, ids(recs), err)
		}
	}
	first, err := eng.RecordsList("acme", switchboard.RecordsQuery{Limit: 1})
	if err != nil || len(first) != 1 {
		t.Fatal(first, err)
	}
	// RecordsPages: the pages, each After the last record of the one before.
	for _, c := range []struct {
		q    switchboard.RecordsQuery
		want string
	}{
		{switchboard.RecordsQuery{Limit: 1}, "c3 c2 c1"},
		{switchboard.RecordsQuery{Limit: 2}, "c3,c2 c1"},
		{switchboard.RecordsQuery{Limit: 3}, "c3,c2,c1"},
		{switchboard.RecordsQuery{}, "c3,c2,c1"},
		{switchboard.RecordsQuery{Limit: 1, After: first[0]}, "c2 c1"},
		{switchboard.RecordsQuery{Queue: "nosuch"}, ""},
	} {
		pages := eng.RecordsPages("acme", c.q)
		var got []string
		for pages.Next() {
			got = append(got, ids(pages.Page()))
		}
		var se *switchboard.Error
		if c.want == "" {
			if !errors.As(pages.Err(), &se) || se.Code != switchboard.ErrNotFound || se.Field != "queue" {
				t.Errorf("RecordsPages of a queue never had: %v %v", got, pages.Err())
			}
		} else if pages.Err() != nil || strings.Join(got, " ") != c.want {
			t.Errorf("RecordsPages %+v: %v %v, want %s", c.q, got, pages.Err(), c.want)
		}
	}
	next, err := eng.RecordsList("acme", switchboard.RecordsQuery{Limit: 1, After: first[0]})
	if err != nil || len(next) != 1 || next[0]["id"] == first[0]["id"] {
		t.Errorf("the page after %s: %s %v", ids(first), ids(next), err)
	}
}

// recordsSetup: acme with a retention policy (abandoned calls deleted after 7
// days) and a personal attribute; c1 answered and c2 abandoned from one
// number, c3 abandoned from another.
func recordsSetup(t *testing.T, eng *switchboard.Engine, clock *fakeClock) {
	t.Helper()
	must(t)(eng.AccountPut(`{"id":"acme","retention":"retention/delete-abandoned-7-days","personal_attrs":["name"]}`))
	for _, id := range []string{"alice", "bob"} {
		must(t)(eng.AgentPut("acme", agentDoc(id)))
	}
	must(t)(eng.QueuePut("acme", `{"id":"support","policy":"longest-idle","members":[{"agent":"alice"},{"agent":"bob"}]}`))
	for _, c := range []struct {
		id, caller string
		answer     bool
		attrs      map[string]any
	}{{"c1", "+442079460001", true, map[string]any{"name": "Jane"}}, {"c2", "+442079460001", false, nil},
		{"c3", "+442079460002", false, nil}} {
		clock.advance(time.Second)
		acts, err := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: c.id, Queue: "support",
			Caller: c.caller, Attrs: c.attrs})
		ring := find(acts, switchboard.ActionRing, c.id)
		if err != nil || ring == nil {
			t.Fatalf("offer %s: %v %v", c.id, acts, err)
		}
		clock.advance(time.Second)
		if c.answer {
			must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: c.id, Agent: ring.Agent,
				Outcome: switchboard.Answered}))
			clock.advance(30 * time.Second)
			must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: c.id}))
		} else {
			must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: c.id}))
		}
	}
}

func ids(recs []map[string]any) string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprint(r["id"]))
	}
	return strings.Join(out, ",")
}

// A call from a withheld number: an Offer whose Caller is "" (sb_event's
// NULL), or JSON with "caller" null. CallGet shows no caller, and the
// record is found by the number dialled alone, with "caller" nil.
func TestWithheldCaller(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	acts, err := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "w1", Queue: "support"})
	if err != nil || find(acts, switchboard.ActionRing, "w1") == nil {
		t.Fatalf("an Offer without a Caller is a withheld call, and rings: %v %v", acts, err)
	}
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "w1"}))
	acts, err = eng.SubmitJSON("acme", []byte(`{"type":"offer","call":"w2","queue":"support","caller":null,"called":"+442079469001"}`))
	ring := find(acts, switchboard.ActionRing, "w2")
	if err != nil || ring == nil {
		t.Fatalf("SubmitJSON with caller null: %v %v", acts, err)
	}
	c, err := eng.CallGet("acme", "w2")
	if _, has := c["caller"]; err != nil || has || c["called"] != "+442079469001" {
		t.Errorf("CallGet of a withheld call: %v %v", c, err)
	}
	clock.advance(2 * time.Second)
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: "w2", Agent: ring.Agent,
		Outcome: switchboard.Answered}))
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: "w2"}))
	x, err := eng.RecordsExport("acme", "+442079469001", switchboard.ExportJSON)
	if err != nil || ids(x.Records) != "w2" {
		t.Fatalf("RecordsExport of the number dialled: %+v %v", x, err)
	}
	if r := x.Records[0]; r["role"] != "called" || r["caller"] != nil {
		t.Errorf("the withheld call's record: role %v, caller %v", r["role"], r["caller"])
	}
	_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "w3", Queue: "support",
		Caller: "anonymous"})
	var se *switchboard.Error
	if !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != "caller" ||
		!strings.Contains(se.Message, "withheld") {
		t.Errorf("Caller \"anonymous\": %v", err)
	}
	if r, err := eng.Erase("acme", "+442079469001"); err != nil || r.Deleted != 1 {
		t.Errorf("Erase of the number dialled: %+v %v", r, err)
	}
}

// Event.By says who ended a call: the record keeps it as "ended_by", a
// ringing call the system ends is failed, and what the engine refuses of a
// by (an agent ending a call not connected, an agent's abandon, an unknown
// party, a by on an offer) comes back naming "by".
func TestEndedBy(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	acts, err := eng.Submit("acme", offer("e1"))
	ring := find(acts, switchboard.ActionRing, "e1")
	if err != nil || ring == nil {
		t.Fatalf("offer e1: %v %v", acts, err)
	}
	clock.advance(2 * time.Second)
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: "e1", Agent: ring.Agent,
		Outcome: switchboard.Answered}))
	clock.advance(30 * time.Second)
	acts, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: "e1", By: switchboard.ByAgent})
	if end := find(acts, switchboard.ActionEnd, "e1"); err != nil || end == nil || end.Reason != "answered" {
		t.Fatalf("hangup by the agent: %v %v", acts, err)
	}
	if c, err := eng.CallGet("acme", "e1"); err != nil || c["outcome"] != "answered" || c["ended_by"] != "agent" {
		t.Errorf("the record of a hangup by the agent: %v %v", c, err)
	}

	acts, err = eng.Submit("acme", offer("e2"))
	ring = find(acts, switchboard.ActionRing, "e2")
	if err != nil || ring == nil {
		t.Fatalf("offer e2: %v %v", acts, err)
	}
	var se *switchboard.Error
	cases := []struct {
		name  string
		ev    switchboard.Event
		code  switchboard.Code
		field string
	}{
		{"the agent hanging up a ringing call", switchboard.Event{Type: switchboard.Hangup, Call: "e2", By: switchboard.ByAgent}, switchboard.ErrState, "by"},
		{"an abandon by the agent", switchboard.Event{Type: switchboard.Abandon, Call: "e2", By: switchboard.ByAgent}, switchboard.ErrInvalid, "by"},
		{"an unknown party", switchboard.Event{Type: switchboard.Hangup, Call: "e2", By: switchboard.BySystem + 1}, switchboard.ErrInvalid, "by"},
		// Not cut to C's 32 bits, where it would read as the caller.
		{"a party past C's int", switchboard.Event{Type: switchboard.Hangup, Call: "e2", By: 1<<32 + switchboard.ByCaller}, switchboard.ErrInvalid, "by"},
		{"a by on an offer", switchboard.Event{Type: switchboard.Offer, Call: "e3", Queue: "support", Caller: "+15550000001", By: switchboard.ByCaller}, switchboard.ErrInvalid, "by"},
	}
	for _, c := range cases {
		if _, err := eng.Submit("acme", c.ev); !errors.As(err, &se) || se.Code != c.code || se.Field != c.field {
			t.Errorf("%s: got %v, want %s field %q", c.name, err, c.code.Name(), c.field)
		}
	}
	if live, err := eng.CallList("acme", ""); err != nil || len(live) != 1 || live[0]["id"] != "e2" || live[0]["state"] != "ringing" {
		t.Fatalf("after the refusals only e2 is live, and rings: %v %v", live, err)
	}
	acts, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: "e2", By: switchboard.BySystem})
	cancel, end := find(acts, switchboard.ActionCancel, "e2"), find(acts, switchboard.ActionEnd, "e2")
	if err != nil || cancel == nil || cancel.Reason != "call failed" || end == nil || end.Reason != "failed" {
		t.Fatalf("hangup of a ringing call by the system: %v %v", acts, err)
	}
	if c, err := eng.CallGet("acme", "e2"); err != nil || c["outcome"] != "failed" || c["ended_by"] != "system" {
		t.Errorf("the record of a ringing call the system ended: %v %v", c, err)
	}
	days, err := eng.Aggregates("acme", "", time.Time{}, time.Time{})
	if err != nil || len(days) == 0 || days[0].Queue != "" || days[0].Answered != 1 || days[0].Failed != 1 {
		t.Errorf("the account's aggregates: one answered, one failed: %+v %v", days, err)
	}
}

// TestAggregateServiceLevelNull: a row's service_level is null without a
// call offered (switchboard.h), None in Python and sb.null in Lua; Go's is
// nil, not 0, which is a row whose calls were none answered in time.
func TestAggregateServiceLevelNull(t *testing.T) {
	days, err := switchboard.AggregateDaysFromJSON([]byte(`[
		{"day":"2026-01-05","timezone":"UTC","queue":null,"offered":0,"answered":0,"abandoned":0,
		 "rejected":0,"overflowed":0,"failed":0,"wait_total":0,"answer_wait_total":0,"talk_total":0,
		 "max_wait":0,"answered_within_sl":0,"service_level":null},
		{"day":"2026-01-05","timezone":"UTC","queue":"support","offered":2,"answered":0,"abandoned":2,
		 "rejected":0,"overflowed":0,"failed":0,"wait_total":40,"answer_wait_total":0,"talk_total":0,
		 "max_wait":30,"answered_within_sl":0,"service_level":0}]`))
	if err != nil || len(days) != 2 {
		t.Fatalf("rows: %v %v", days, err)
	}
	if days[0].ServiceLevel != nil {
		t.Errorf("service_level null: ServiceLevel %v, want nil", *days[0].ServiceLevel)
	}
	if sl := days[1].ServiceLevel; sl == nil || *sl != 0 {
		t.Errorf("service_level 0: ServiceLevel %v, want a pointer to 0", sl)
	}
}

func TestRecords(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	recordsSetup(t, eng, clock)

	// A dry run of the sweep a year on: every record would go, none does.
	pv, err := eng.RetentionPreview("acme", switchboard.RetentionPreviewOptions{InDays: 365, Sample: -1})
	if err != nil || pv.Reviewed == 0 || pv.Deleted != pv.Reviewed || !pv.Done || len(pv.Samples["deleted"]) != 0 ||
		pv.Policy != "retention/delete-abandoned-7-days" || pv.At.Before(clock.now()) {
		t.Errorf("RetentionPreview: %+v %v", pv, err)
	}
	if recs, err := eng.RecordsList("acme", switchboard.RecordsQuery{}); err != nil || len(recs) == 0 {
		t.Errorf("RecordsList after the preview: %v %v", ids(recs), err)
	}
	pv, err = eng.RetentionPreview("acme", switchboard.RetentionPreviewOptions{Policy: "mine",
		Source: "return {retain = function() return {keep = true, reason = 'x'} end}", Scope: "all"})
	if err != nil || pv.Kept != pv.Reviewed || pv.Source != "given" || pv.Reasons["keep: x"] != pv.Kept {
		t.Errorf("RetentionPreview of a source: %+v %v", pv, err)
	}
	if _, err := eng.RetentionPreview("acme", switchboard.RetentionPreviewOptions{InDays: -1}); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("RetentionPreview InDays -1: %v", err)
	}

	recs, err := eng.RecordsList("acme", switchboard.RecordsQuery{})
	if err != nil || ids(recs) != "c3,c2,c1" {
		t.Fatalf("RecordsList: %v %v", ids(recs), err)
	}
	for _, r := range recs {
		if _, ok := r["caller"]; ok {
			t.Errorf("a listed record holds a number: %v", r)
		}
	}
	if recs, err := eng.RecordsList("acme", switchboard.RecordsQuery{Queue: "support", Limit: 1,
		From: time.UnixMilli(1), To: clock.now().Add(time.Hour)}); err != nil || ids(recs) != "c3" {
		t.Errorf("RecordsList with a query: %v %v", ids(recs), err)
	}

	x, err := eng.RecordsExport("acme", "+44 20 7946 0001", switchboard.ExportJSON)
	if err != nil || x.Number != "+442079460001" || x.Count != 2 || ids(x.Records) != "c1,c2" {
		t.Fatalf("RecordsExport: %+v %v", x, err)
	}
	if c1 := x.Records[0]; c1["caller"] != "+442079460001" || c1["role"] != "caller" ||
		fmt.Sprint(c1["personal_attrs"]) != "map[name:Jane]" {
		t.Errorf("the exported record: %v", c1)
	}
	csv, err := eng.RecordsExport("acme", "+442079460001", switchboard.ExportCSV)
	if err != nil || csv.Count != 2 || !strings.HasPrefix(csv.CSV, "id,role,caller,") || strings.Count(csv.CSV, "\r\n") != 3 {
		t.Errorf("RecordsExport CSV: %+v %v", csv, err)
	}

	h, err := eng.HoldPlace("acme", switchboard.HoldRequest{ID: "h1", Call: "c2", Reason: "litigation"})
	if err != nil || h.ID != "h1" || h.Kind != "call" || h.Call != "c2" || h.Reason != "litigation" ||
		!h.Created.Equal(clock.now()) {
		t.Fatalf("HoldPlace: %+v %v", h, err)
	}
	if holds, err := eng.HoldList("acme"); err != nil || len(holds) != 1 || holds[0] != *h {
		t.Errorf("HoldList: %+v %v", holds, err)
	}
	if got, err := eng.HoldGet("acme", "h1"); err != nil || *got != *h {
		t.Errorf("HoldGet: %+v %v, want %+v", got, err, h)
	}
	if _, err := eng.HoldPlace("acme", switchboard.HoldRequest{ID: "h1", Call: "c1", Reason: "x"}); !errors.Is(err, switchboard.ErrExists) {
		t.Errorf("a taken hold id: %v", err)
	}
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	if r, err := eng.HoldPlace("acme", switchboard.HoldRequest{From: day, To: day.Add(time.Hour), Reason: "audit"}); err != nil ||
		r.Kind != "range" || !r.From.Equal(day) || !r.To.Equal(day.Add(time.Hour)) || len(r.ID) != 9 {
		t.Errorf("a range hold with a made-up id: %+v %v", r, err)
	} else if _, err := eng.HoldRelease("acme", r.ID); err != nil {
		t.Error(err)
	}

	clock.advance(8 * 24 * time.Hour)
	var seen [][2]uint64
	var inner []int
	sw, err := eng.Sweep(0, func(done, total uint64) {
		seen = append(seen, [2]uint64{done, total})
		st, _ := eng.Stats() // the engine, from the callback
		inner = append(inner, len(st))
	})
	if err != nil || sw.Reviewed != 2 || sw.Deleted != 1 || sw.Overridden != 1 || !sw.Done || sw.Transactions < 1 {
		t.Fatalf("Sweep: %+v %v", sw, err)
	}
	if len(seen) != sw.Transactions || seen[len(seen)-1][0] != 2 || len(inner) != len(seen) || inner[0] == 0 {
		t.Errorf("progress: %v (engine calls from it: %v)", seen, inner)
	}
	if sw, err := eng.Sweep(time.Second, nil); err != nil || sw.Reviewed != 0 {
		t.Errorf("a second sweep: %+v %v", sw, err)
	}
	func() {
		defer func() {
			if r := recover(); r != "from progress" {
				t.Errorf("a panic in progress: recovered %v", r)
			}
		}()
		eng.Sweep(0, func(done, total uint64) { panic("from progress") })
		t.Error("Sweep did not panic")
	}()
	if _, err := eng.Stats(); err != nil {
		t.Errorf("the engine after a progress panic: %v", err)
	}

	entries, next, err := eng.AuditList("acme", 0, 0)
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%d:%s:%s", e.Seq, e.Action, e.Call))
	}
	// The two access requests first, each with how many records it
	// disclosed and no number.
	if err != nil || len(entries) < 7 || got[0] != "1:access_request:" || got[1] != "2:access_request:" ||
		got[2] != "3:hold_placed:c2" || next != entries[len(entries)-1].Seq {
		t.Fatalf("AuditList: %v next %d %v", got, next, err)
	}
	if e := entries[0]; e.Source != "access" || e.Reason != "access request: 2 records disclosed as JSON" ||
		entries[1].Reason != "access request: 2 records disclosed as CSV" || !e.Ended.IsZero() {
		t.Errorf("the access requests' entries: %+v %+v", e, entries[1])
	}
	var over *switchboard.AuditEntry
	for i := range entries {
		if entries[i].Overridden {
			over = &entries[i]
		}
	}
	if over == nil || over.Call != "c2" || over.Action != "keep" || over.Decision != "delete" || over.Source != "review" ||
		over.Policy != "retention/delete-abandoned-7-days" || over.Ended.IsZero() {
		t.Errorf("the overridden deletion: %+v", over)
	}
	if page, next2, err := eng.AuditList("acme", 2, 1); err != nil || len(page) != 1 || page[0].Seq != 3 || next2 != 3 {
		t.Errorf("AuditList(after 2, limit 1): %+v %d %v", page, next2, err)
	}
	// AuditPages: the same entries, a page at a time (Python's audit_pages,
	// Lua's eng:audit_pages).
	var seqs, want []string
	for _, e := range entries {
		want = append(want, fmt.Sprint(e.Seq))
	}
	for _, limit := range []int{2, len(entries), 0} {
		seqs = seqs[:0]
		pages, n := eng.AuditPages("acme", 0, limit), 0
		for pages.Next() {
			n++
			if len(pages.Page()) == 0 || (limit > 0 && len(pages.Page()) > limit) {
				t.Errorf("AuditPages limit %d: page %d of %d entries", limit, n, len(pages.Page()))
			}
			for _, e := range pages.Page() {
				seqs = append(seqs, fmt.Sprint(e.Seq))
			}
		}
		if pages.Err() != nil || strings.Join(seqs, ",") != strings.Join(want, ",") {
			t.Errorf("AuditPages limit %d: %v %v, want %v", limit, seqs, pages.Err(), want)
		}
	}
	if pages := eng.AuditPages("acme", 2, 1); !pages.Next() || len(pages.Page()) != 1 || pages.Page()[0].Seq != 3 {
		t.Errorf("AuditPages after 2: %+v %v", pages.Page(), pages.Err())
	}
	if pages := eng.AuditPages("acme", entries[len(entries)-1].Seq, 0); !pages.Next() || len(pages.Page()) != 0 || pages.Next() {
		t.Errorf("AuditPages after the last entry: one empty page, then none: %+v %v", pages.Page(), pages.Err())
	}
	var ae *switchboard.Error
	if pages := eng.AuditPages("acme", 0, -1); pages.Next() || !errors.As(pages.Err(), &ae) || ae.Field != "limit" {
		t.Errorf("AuditPages limit -1: %v", pages.Err())
	}

	er, err := eng.Erase("acme", "+442079460001")
	if err != nil || er.Deleted != 1 || er.Kept != 1 || er.Failed != 0 || er.Reasons["keep: legal hold h1: litigation"] != 1 {
		t.Errorf("Erase: %+v %v", er, err)
	}
	if r, err := eng.HoldRelease("acme", "h1"); err != nil || !r.Released || r.ID != "h1" {
		t.Errorf("HoldRelease: %+v %v", r, err)
	}
	if holds, err := eng.HoldList("acme"); err != nil || len(holds) != 0 {
		t.Errorf("HoldList after release: %+v %v", holds, err)
	}
	if got, err := eng.HoldGet("acme", "h1"); !errors.Is(err, switchboard.ErrNotFound) || got != nil {
		t.Errorf("HoldGet of the released hold: %+v %v", got, err)
	}
	// The erasure the hold kept from c2's record runs again at the next sweep.
	if sw, err := eng.Sweep(0, nil); err != nil || sw.Erased != 1 || sw.ThisCall.Erased != 1 || sw.Deleted != 1 {
		t.Errorf("the sweep after the release: %+v %v", sw, err)
	}
	// Made again: nothing left, and Earlier says what the first request did.
	if er, err := eng.Erase("acme", "+442079460001"); err != nil || er.Deleted != 0 || len(er.Earlier) != 1 ||
		er.Earlier[0].Deleted != 1 || er.Earlier[0].Held != 1 || er.Earlier[0].AppliedAgain == nil || *er.Earlier[0].AppliedAgain {
		t.Errorf("Erase made again: %+v %v", er, err)
	}

	days, err := eng.Aggregates("acme", "", time.Time{}, time.Time{})
	if err != nil || len(days) != 2 || days[0].Queue != "" || days[1].Queue != "support" || days[0].Day != "2026-01-05" ||
		days[0].Offered != 3 || days[0].Answered != 1 || days[0].Abandoned != 2 || days[0].TalkTotal != 30*time.Second {
		t.Errorf("Aggregates: %+v %v", days, err)
	}
	if days, err := eng.Aggregates("acme", "support", day, day.Add(24*time.Hour)); err != nil || len(days) != 1 {
		t.Errorf("Aggregates of one queue, one day: %+v %v", days, err)
	}
	if days[0].Timezone != "UTC" {
		t.Errorf("an account without a timezone: a row's Timezone %q, want UTC", days[0].Timezone)
	}
	if sl := days[0].ServiceLevel; sl == nil || days[0].AnsweredWithinSL != 1 || *sl < 0.3333 || *sl > 0.3334 {
		t.Errorf("a row with calls: ServiceLevel %v, want AnsweredWithinSL/Offered (%d/%d)", fmtSL(sl), days[0].AnsweredWithinSL, days[0].Offered)
	}
	// In the account's zone: 03:00 UTC is the evening before in New York.
	acct, err := eng.AccountGet("acme")
	if err != nil {
		t.Fatal(err)
	}
	acct["timezone"] = "America/New_York"
	if _, err := eng.AccountPut(acct); err != nil {
		t.Fatal(err)
	}
	clock.set(time.Date(2026, 2, 3, 3, 0, 0, 0, time.UTC))
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "ny1", Queue: "support",
		Caller: "+442079460079"}))
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "ny1"}))
	feb2 := time.Date(2026, 2, 2, 12, 0, 0, 0, time.UTC)
	if days, err := eng.Aggregates("acme", "", feb2, feb2.Add(time.Hour)); err != nil || len(days) != 2 ||
		days[0].Day != "2026-02-02" || days[0].Timezone != "America/New_York" || days[0].Offered != 1 {
		t.Errorf("Aggregates of a New York account: %+v %v", days, err)
	}
	// A call of a number in progress is in no record yet: Live counts it.
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "lv1", Queue: "support",
		Caller: "+442079460077"}))
	if x, err := eng.RecordsExport("acme", "+442079460077", switchboard.ExportJSON); err != nil || x.Count != 0 || x.Live != 1 {
		t.Errorf("RecordsExport during a call: %+v %v", x, err)
	}
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "lv1"}))
	// A deleted queue's rows keep its id, marked.
	must(t)(eng.QueuePut("acme", `{"id":"gone","members":[{"agent":"alice"}]}`))
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "g1", Queue: "gone",
		Caller: "+442079460078"}))
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "g1"}))
	if err := eng.QueueDelete("acme", "gone"); err != nil {
		t.Fatal(err)
	}
	if days, err := eng.Aggregates("acme", "gone", time.Time{}, time.Time{}); err != nil || len(days) != 1 ||
		days[0].Queue != "gone" || !days[0].QueueDeleted || days[0].Offered != 1 {
		t.Errorf("Aggregates of a deleted queue: %+v %v", days, err)
	}

	cases := []struct {
		name  string
		err   error
		code  switchboard.Code
		field string
	}{
		{"bad number", second(eng.RecordsExport("acme", "12345", switchboard.ExportJSON)), switchboard.ErrInvalid, "number"},
		{"bad format", second(eng.RecordsExport("acme", "+442079460001", 7)), switchboard.ErrInvalid, "format"},
		{"hold on nothing", second(eng.HoldPlace("acme", switchboard.HoldRequest{Reason: "x"})), switchboard.ErrInvalid, ""},
		{"unknown hold", second(eng.HoldRelease("acme", "nope")), switchboard.ErrNotFound, "hold"},
		{"HoldGet of an unknown hold", second(eng.HoldGet("acme", "nope")), switchboard.ErrNotFound, "hold"},
		{"HoldGet of no id", second(eng.HoldGet("acme", "")), switchboard.ErrNotFound, "hold"},
		{"HoldGet in another account", second(eng.HoldGet("other", "h1")), switchboard.ErrNotFound, "account"},
		{"unknown queue", second(eng.Aggregates("acme", "nope", time.Time{}, time.Time{})), switchboard.ErrNotFound, "queue"},
		{"other account", second(eng.Erase("other", "+442079460001")), switchboard.ErrNotFound, "account"},
		{"NUL in a number", second(eng.Erase("acme", "+44\x00")), switchboard.ErrInvalid, ""},
	}
	for _, c := range cases {
		var se *switchboard.Error
		if !errors.As(c.err, &se) || se.Code != c.code || (c.field != "" && se.Field != c.field) {
			t.Errorf("%s: %v", c.name, c.err)
		}
	}
	if _, err := eng.HoldPlace("acme", switchboard.HoldRequest{ID: "h2", Number: "+442079460002", Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := eng.AccountDelete("acme"); !errors.Is(err, switchboard.ErrHold) {
		t.Errorf("deleting an account under a hold: %v", err)
	}
	if acts, err := eng.AccountEvict("acme"); !errors.Is(err, switchboard.ErrHold) || acts != nil {
		t.Errorf("evicting an account under a hold: %v %v", acts, err)
	}
	if _, err := eng.AccountGet("acme"); err != nil {
		t.Errorf("the account under a hold is still there: %v", err)
	}
	eng.Close()
	if _, err := eng.Sweep(0, nil); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("Sweep on a closed engine: %v", err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestBackup(t *testing.T) {
	clock := newClock()
	data := filepath.Join(t.TempDir(), "data")
	eng := open(t, data, clock, nil)
	recordsSetup(t, eng, clock)

	dest := filepath.Join(t.TempDir(), "backup") // does not exist yet: Backup creates it
	r, err := eng.Backup(dest)
	if err != nil || r == nil || r.Dir != dest || r.Bytes <= 0 || !strings.HasPrefix(r.MasterKey, "not copied") {
		t.Fatalf("Backup: %+v %v", r, err)
	}
	if st, err := os.Stat(filepath.Join(dest, "data.mdb")); err != nil || st.Size() != r.Bytes {
		t.Errorf("data.mdb in the backup: %v %v (Bytes %d)", st, err, r.Bytes)
	}
	if !exists(filepath.Join(dest, "data.keys")) {
		t.Error("data.keys is not in the backup")
	}
	if !exists(filepath.Join(data, "master.key")) || exists(filepath.Join(dest, "master.key")) {
		t.Error("master.key must be in the data directory and not in the backup")
	}

	var se *switchboard.Error
	_, err = eng.Backup(dest)
	if !errors.Is(err, switchboard.ErrExists) || !errors.As(err, &se) || se.Code != switchboard.ErrExists || se.Field != "dest" {
		t.Errorf("a second backup into the same directory: %v", err)
	}
	cases := []struct {
		name, dest string
		field      string
	}{
		{"no directory", "", "dest"},
		{"the data directory itself", data, "dest"},
		{"a NUL byte", dest + "-nul\x00x", ""},
	}
	for _, c := range cases {
		r, err := eng.Backup(c.dest)
		if r != nil || !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || (c.field != "" && se.Field != c.field) {
			t.Errorf("%s: %+v %v", c.name, r, err)
		}
	}
	if exists(dest + "-nul") {
		t.Error("a dest holding a NUL byte wrote at the path before it")
	}

	// The backup opens with the data directory's master key.
	cp, err := switchboard.Open(switchboard.Config{DataDir: dest, KeyFile: filepath.Join(data, "master.key"),
		Sync: switchboard.SyncNone, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cp.RecordsList("acme", switchboard.RecordsQuery{})
	cp.Close()
	if err != nil || ids(recs) != "c3,c2,c1" {
		t.Errorf("the backup's records: %v %v", ids(recs), err)
	}

	eng.Close()
	closed := filepath.Join(t.TempDir(), "closed")
	if _, err := eng.Backup(closed); !errors.Is(err, switchboard.ErrInvalid) || exists(closed) {
		t.Errorf("Backup on a closed engine: %v", err)
	}
}

// MasterKeyRotate on a data directory made here: refused while an engine has
// it open and for bad input (the engine's code, field and message; data.keys
// unchanged, no key made), then rotated to a key it makes: the old key no
// longer opens the directory, the new one finds its records and the API key
// made before.
func TestMasterKeyRotate(t *testing.T) {
	clock := newClock()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	old, newKey := filepath.Join(data, "master.key"), filepath.Join(dir, "new.key")
	keysPath := filepath.Join(data, "data.keys")
	eng := open(t, data, clock, nil)
	recordsSetup(t, eng, clock)
	_, apiKey, err := eng.APIKeyCreate("acme")
	if err != nil {
		t.Fatal(err)
	}
	before, err := eng.RecordsList("acme", switchboard.RecordsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := os.ReadFile(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	// refused: MasterKeyRotate(cfg, newKeyFile) fails with code, field and a
	// message holding msg, and changes nothing.
	refused := func(what string, cfg switchboard.Config, newKeyFile string, code switchboard.Code, field, msg string) {
		t.Helper()
		if cfg.Log == nil {
			cfg.Log = quiet
		}
		r, err := switchboard.MasterKeyRotate(cfg, newKeyFile)
		var se *switchboard.Error
		if r != nil || !errors.As(err, &se) || se.Code != code || se.Field != field || !strings.Contains(se.Message, msg) {
			t.Errorf("%s: %+v %v, want %s naming %q saying %q", what, r, err, code.Name(), field, msg)
		}
		if now, _ := os.ReadFile(keysPath); string(now) != string(keys) || exists(newKey) {
			t.Errorf("%s: data.keys changed or a new key made", what)
		}
	}
	refused("while an engine has the directory open", switchboard.Config{DataDir: data}, newKey,
		switchboard.ErrBusy, "data_dir", "open in this process by another engine")
	eng.Close()

	other := filepath.Join(dir, "other.key")
	if err := os.WriteFile(other, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("an old key that is not the directory's", switchboard.Config{DataDir: data, KeyFile: other}, newKey,
		switchboard.ErrCrypto, "key_file", "is not the one this data directory")
	nowhere := filepath.Join(dir, "no-such-dir", "new.key")
	refused("a new key file where none can be made", switchboard.Config{DataDir: data}, nowhere,
		switchboard.ErrCrypto, "new_key_file", nowhere)
	if err := os.Chmod(other, 0o644); err != nil {
		t.Fatal(err)
	}
	refused("a new key file others may read", switchboard.Config{DataDir: data}, other,
		switchboard.ErrInvalid, "new_key_file", "mode 0644")
	refused("the key in use as the new key", switchboard.Config{DataDir: data}, old,
		switchboard.ErrInvalid, "new_key_file", "is the key file in use")
	refused("no new key file", switchboard.Config{DataDir: data}, "",
		switchboard.ErrInvalid, "new_key_file", "no new key file given")
	refused("a NUL byte", switchboard.Config{DataDir: data}, newKey+"\x00x",
		switchboard.ErrInvalid, "new_key_file", "holds a NUL byte")
	refused("a log level out of range", switchboard.Config{DataDir: data, LogLevel: 9}, newKey,
		switchboard.ErrInvalid, "log_level", "unknown log level 9")
	nothing := filepath.Join(dir, "nothing")
	refused("a data directory that does not exist", switchboard.Config{DataDir: nothing}, newKey,
		switchboard.ErrInvalid, "data_dir", "holds no data")
	if exists(nothing) {
		t.Error("a data directory that does not exist was made")
	}

	var lines []string
	r, err := switchboard.MasterKeyRotate(switchboard.Config{DataDir: data,
		Log: func(l switchboard.LogLevel, line string) { lines = append(lines, l.String()+" "+line) }}, newKey)
	want := switchboard.KeyRotation{DataDir: data, KeyFile: newKey, OldKeyFile: old, NewKeyMade: true, Accounts: 1}
	if err != nil || r == nil || !strings.Contains(r.Backups, "old key") {
		t.Fatalf("MasterKeyRotate: %+v %v", r, err)
	}
	if r.Backups = ""; *r != want {
		t.Errorf("MasterKeyRotate: %+v, want %+v", *r, want)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "info master key rotated") {
		t.Errorf("the rotation's log line was not given to Log: %q", lines)
	}
	if st, err := os.Stat(newKey); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 65 {
		t.Errorf("the new key: %v %v, want mode 0600, 64 hex digits", st, err)
	}
	if now, _ := os.ReadFile(keysPath); string(now) == string(keys) || exists(keysPath+".rotate") {
		t.Error("data.keys not written again, or something left beside it")
	}

	_, err = switchboard.Open(switchboard.Config{DataDir: data, Sync: switchboard.SyncNone, Log: quiet})
	var se *switchboard.Error
	if !errors.As(err, &se) || se.Code != switchboard.ErrCrypto || !strings.Contains(se.Message, "is not the one this data directory") {
		t.Errorf("the old key opened the rotated directory: %v", err)
	}
	eng, err = switchboard.Open(switchboard.Config{DataDir: data, KeyFile: newKey, Sync: switchboard.SyncNone, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	recs, err := eng.RecordsList("acme", switchboard.RecordsQuery{})
	if err != nil || ids(recs) != ids(before) || ids(recs) != "c3,c2,c1" {
		t.Errorf("the records with the new key: %v %v, want %v", ids(recs), err, ids(before))
	}
	if !eng.APIKeyVerify("acme", apiKey) || eng.APIKeyVerify("acme", apiKey+"x") {
		t.Error("the API key made before the rotation does not verify with the new key (or another does)")
	}
}

func BenchmarkCallCycle(b *testing.B) {
	clock := newClock()
	eng, err := switchboard.Open(switchboard.Config{DataDir: b.TempDir(), PolicyDir: policies, Sync: switchboard.SyncNone,
		Clock: clock.now, LogLevel: switchboard.LogWarn, MapSize: 512 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	eng.AccountPut(`{"id":"bench"}`)
	members := []map[string]string{}
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("a%d", i)
		eng.AgentPut("bench", agentDoc(id))
		members = append(members, map[string]string{"agent": id})
	}
	eng.QueuePut("bench", map[string]any{"id": "q", "policy": "longest-idle", "members": members})
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		call := fmt.Sprintf("c%d", i)
		clock.advance(7 * time.Millisecond)
		acts, err := eng.Submit("bench", switchboard.Event{Type: switchboard.Offer, Call: call, Queue: "q", Caller: "+442079460000"})
		r := find(acts, switchboard.ActionRing, call)
		if err != nil || r == nil {
			b.Fatal(err)
		}
		eng.Submit("bench", switchboard.Event{Type: switchboard.RingResult, Call: call, Agent: r.Agent, Outcome: switchboard.Answered})
		eng.Submit("bench", switchboard.Event{Type: switchboard.Hangup, Call: call})
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cycles/s")
}

// TestProvisioningActions: a put that lets a waiting call ring (a member
// added, a queue given a free agent, an agent made available) returns the
// rings as "actions", typed []Action like Submit's, not the engine's JSON.
func TestProvisioningActions(t *testing.T) {
	eng := open(t, t.TempDir(), newClock(), nil)
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	for _, a := range []string{`{"id":"alice","status":"available","devices":{"softphone":"sip:alice@pbx.example"}}`,
		`{"id":"bob","status":"available","devices":{"softphone":"sip:bob@pbx.example"}}`,
		`{"id":"carol","status":"offline","devices":{"softphone":"sip:carol@pbx.example"}}`} {
		m, err := eng.AgentPut("acme", a)
		if _, ok := m["actions"]; err != nil || ok {
			t.Fatalf("AgentPut with no call waiting: %v %v", m, err)
		}
	}
	for _, q := range []string{`{"id":"q1","policy":"longest-idle"}`, `{"id":"q2","policy":"longest-idle"}`,
		`{"id":"q3","policy":"longest-idle","members":[{"agent":"carol"}]}`} {
		must(t)(eng.QueuePut("acme", q))
	}
	for _, q := range []string{"q1", "q2", "q3"} {
		acts, err := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "c-" + q, Queue: q,
			Caller: "+442079460001"})
		if err != nil || find(acts, switchboard.ActionWait, "c-"+q) == nil {
			t.Fatalf("offer to %s: %v %v", q, acts, err)
		}
	}
	rings := func(what string, m map[string]any, err error, call, agent string) {
		t.Helper()
		acts, ok := m["actions"].([]switchboard.Action)
		if err != nil || !ok {
			t.Fatalf("%s: %#v %v", what, m, err)
		}
		r := find(acts, switchboard.ActionRing, call)
		if r == nil || r.Agent != agent || r.URI != "sip:"+agent+"@pbx.example" || r.Timeout <= 0 {
			t.Errorf("%s: %+v", what, acts)
		}
		b, _ := json.Marshal(m) // the engine's own shape, as before
		if !strings.Contains(string(b), `"actions":[{"type":"ring","account":"acme","call":"`+call+`"`) {
			t.Errorf("%s as JSON: %s", what, b)
		}
		if c, _ := eng.CallGet("acme", call); c["state"] != "ringing" {
			t.Errorf("%s: %s is %v", what, call, c["state"])
		}
	}
	m, err := eng.MemberPut("acme", "q1", "alice", nil)
	rings("MemberPut", m, err, "c-q1", "alice")
	m, err = eng.QueuePut("acme", `{"id":"q2","policy":"longest-idle","members":[{"agent":"bob"}]}`)
	rings("QueuePut", m, err, "c-q2", "bob")
	if _, ok := m["id"]; !ok {
		t.Errorf("QueuePut's document: %v", m)
	}
	m, err = eng.AgentPut("acme", `{"id":"carol","status":"available","devices":{"softphone":"sip:carol@pbx.example"}}`)
	rings("AgentPut", m, err, "c-q3", "carol")
	if m, err := eng.MemberPut("acme", "q2", "alice", nil); err != nil || len(m) != 0 {
		t.Errorf("MemberPut with no call waiting: %#v %v", m, err)
	}
	// The deletes cause no actions (sb_*_delete give none; they return only
	// an error): a member's ring goes on, a ringing agent and a queue with a
	// live call are not deleted.
	if err := eng.MemberDelete("acme", "q1", "alice"); err != nil {
		t.Error(err)
	}
	if c, _ := eng.CallGet("acme", "c-q1"); c["state"] != "ringing" {
		t.Errorf("after MemberDelete of the ringing agent: %v", c["state"])
	}
	if err := eng.AgentDelete("acme", "alice"); !errors.Is(err, switchboard.ErrState) {
		t.Errorf("AgentDelete of a ringing agent: %v", err)
	}
	if err := eng.QueueDelete("acme", "q1"); !errors.Is(err, switchboard.ErrState) {
		t.Errorf("QueueDelete of a queue with a live call: %v", err)
	}
}

// TestErasureHeld: the erasure report counts the records a legal hold kept
// (the engine's "held"), which it dropped.
func TestErasureHeld(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	recordsSetup(t, eng, clock)
	must(t)(eng.HoldPlace("acme", switchboard.HoldRequest{Number: "+442079460001", Reason: "litigation"}))
	er, err := eng.Erase("acme", "+442079460001")
	if err != nil || er.Held != 2 || er.Kept != 2 || er.Deleted != 0 {
		t.Errorf("Erase under a number hold: %+v %v", er, err)
	}
	if er, err := eng.Erase("acme", "+442079460002"); err != nil || er.Held != 0 || er.Deleted != 1 {
		t.Errorf("Erase with no hold: %+v %v", er, err)
	}
}

// TestHoldOpenRange: a range hold needs both bounds, as sb_hold_place and
// the Python and Lua bindings take it: From or To alone is ErrInvalid naming
// the missing one (the binding made up the other: from_ms 0 or to_ms 2^63 - 1,
// a hold Python and Lua refuse). A range from the start (time.UnixMilli(0))
// or to the engine's last millisecond is written out.
func TestHoldOpenRange(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	recordsSetup(t, eng, clock)
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var se *switchboard.Error
	for _, c := range []struct {
		name    string
		h       switchboard.HoldRequest
		missing string
	}{
		{"From alone", switchboard.HoldRequest{ID: "from", From: start, Reason: "from the 5th"}, "to_ms"},
		{"To alone", switchboard.HoldRequest{ID: "until", To: start, Reason: "until the 5th"}, "from_ms"},
	} {
		h, err := eng.HoldPlace("acme", c.h)
		if !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != c.missing ||
			!strings.Contains(se.Message, c.missing+"\" too") {
			t.Errorf("a hold with %s: %+v %v, want ErrInvalid naming %s", c.name, h, err, c.missing)
		}
	}
	if holds, err := eng.HoldList("acme"); err != nil || len(holds) != 0 {
		t.Fatalf("the refused holds placed nothing: %+v %v", holds, err)
	}
	end := time.UnixMilli(math.MaxInt64)
	from, err := eng.HoldPlace("acme", switchboard.HoldRequest{ID: "from", From: start, To: end, Reason: "from the 5th"})
	if err != nil || from.Kind != "range" || !from.From.Equal(start) || from.To.UnixMilli() != math.MaxInt64 {
		t.Fatalf("a hold from the 5th on: %+v %v", from, err)
	}
	until, err := eng.HoldPlace("acme", switchboard.HoldRequest{ID: "until", From: time.UnixMilli(0), To: start, Reason: "until the 5th"})
	if err != nil || until.Kind != "range" || !until.From.Equal(time.UnixMilli(0)) || until.From.IsZero() ||
		!until.To.Equal(start) {
		t.Fatalf("a hold until the 5th, read back from the start (not a zero time): %+v %v", until, err)
	}
	// Read back, it can be placed again as it is (a zero From was refused).
	again, err := eng.HoldPlace("acme", switchboard.HoldRequest{ID: "again", From: until.From, To: until.To, Reason: until.Reason})
	if err != nil || !again.From.Equal(until.From) || !again.To.Equal(until.To) {
		t.Fatalf("the hold until the 5th placed again as read: %+v %v", again, err)
	}
	must(t)(eng.HoldRelease("acme", "again"))
	if holds, err := eng.HoldList("acme"); err != nil || len(holds) != 2 || holds[0] != *from || holds[1] != *until {
		t.Errorf("HoldList: %+v %v", holds, err)
	}
	// The calls ended on the 5th: "from" keeps their records, "until" none.
	if er, err := eng.Erase("acme", "+442079460001"); err != nil || er.Held != 2 || er.Deleted != 0 {
		t.Errorf("Erase under a hold to the engine's end: %+v %v", er, err)
	}
	must(t)(eng.HoldRelease("acme", "from"))
	if er, err := eng.Erase("acme", "+442079460001"); err != nil || er.Held != 0 || er.Deleted != 2 {
		t.Errorf("Erase under a hold that ended before the calls: %+v %v", er, err)
	}
	if _, err := eng.HoldPlace("acme", switchboard.HoldRequest{From: start, To: start, Reason: "x"}); !errors.As(err, &se) ||
		se.Field != "to_ms" {
		t.Errorf("an empty range: %v", err)
	}
}

// TestErasureJournalDays: the setting reaches the engine, whose range
// (0 to 36600) refuses the rest naming it, negative ones too.
func TestErasureJournalDays(t *testing.T) {
	for _, days := range []int{36601, -1, 1<<32 + 30} {
		eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone,
			Log: quiet, ErasureJournalDays: days})
		var se *switchboard.Error
		if err == nil || !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != "erasure_journal_days" {
			t.Errorf("ErasureJournalDays %d: %v", days, err)
		}
		if eng != nil {
			eng.Close()
		}
	}
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone, Log: quiet,
		ErasureJournalDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	eng.Close()
}

// TestQuarantineAfterLarge: a QuarantineAfter past the C field's 32 bits is
// the largest it holds, not its low 32 bits (2^32+1 quarantined a policy at
// its first failure).
func TestQuarantineAfterLarge(t *testing.T) {
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone, Log: quiet,
		QuarantineAfter: 1<<32 + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	if _, err := eng.PolicyPut("acme", "flaky", []byte("local P = {}\nfunction P.route(c, a, ctx) "+
		"if c.id ~= 'probe' then error('boom') end return {wait = 5} end\nreturn P\n"), nil); err != nil {
		t.Fatal(err)
	}
	must(t)(eng.QueuePut("acme", `{"id":"support","policy":"flaky"}`))
	for _, c := range []string{"c1", "c2"} {
		must(t)(eng.Submit("acme", offer(c)))
	}
	pl, err := eng.PolicyList("acme")
	for _, p := range pl {
		if p.Name == "flaky" && (p.State != "ok" || p.Failures != 2) {
			t.Errorf("after 2 failures: %+v %v", p, err)
		}
	}
}

func fmtSL(sl *float64) string {
	if sl == nil {
		return "nil"
	}
	return fmt.Sprint(*sl)
}
