package switchboard_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
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
	if v := switchboard.Version(); v != "0.1.0" {
		t.Errorf("Version() = %q", v)
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
		Device: "softphone", URI: "sip:ag0@pbx.example", Queue: "support", Timeout: 20 * time.Second}
	if ring == nil || *ring != want {
		t.Fatalf("offer: got %+v, want %+v", acts, want)
	}
	js, _ := json.Marshal(ring)
	if string(js) != `{"type":"ring","account":"acme","call":"c1","agent":"ag0","device":"softphone",`+
		`"uri":"sip:ag0@pbx.example","queue":"support","timeout":20}` {
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

	cases := []struct {
		name  string
		err   error
		code  switchboard.Code
		field string
	}{
		{"unknown queue", second(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "b1", Queue: "nope", Caller: "+15550000001"})), switchboard.ErrNotFound, "queue"},
		{"unknown key", second(eng.SubmitJSON("acme", []byte(`{"type":"hangup","call":"x","colour":"red"}`))), switchboard.ErrInvalid, "colour"},
		{"malformed JSON", second(eng.SubmitJSON("acme", []byte(`{"type":`))), switchboard.ErrInvalid, ""},
		{"empty event", second(eng.SubmitJSON("acme", nil)), switchboard.ErrInvalid, ""},
		{"unknown call", second(eng.CallGet("acme", "b1")), switchboard.ErrNotFound, "call"},
		{"bad device", second(eng.AgentPut("acme", `{"id":"z","devices":{"fax":"x"}}`)), switchboard.ErrInvalid, "devices.fax"},
		{"unknown member", second(eng.QueuePut("acme", `{"id":"bq","members":[{"agent":"ag0"},{"agent":"ghost"}]}`)), switchboard.ErrInvalid, "members[1].agent"},
		{"other account", second(eng.AgentGet("other", "ag0")), switchboard.ErrNotFound, ""},
		{"NUL in an id", second(eng.AgentGet("acme", "ag0\x00x")), switchboard.ErrInvalid, ""},
		{"unencodable document", second(eng.AgentPut("acme", map[string]any{"id": make(chan int)})), switchboard.ErrInvalid, ""},
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
	must(t)(eng.QueuePut("acme", `{"id":"fq","policy":"first","members":[{"agent":"ag1","position":2},{"agent":"ag2","position":1}]}`))
	acts, _ := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "p1", Queue: "fq", Caller: "+15550000001"})
	if r := find(acts, switchboard.ActionRing, "p1"); r == nil || r.Agent != "ag2" || r.Device != "mobile" || r.Timeout != 7*time.Second {
		t.Fatalf("the uploaded policy decides: %+v", acts)
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

func TestPolicyTools(t *testing.T) {
	if err := switchboard.PolicyCheck("first.lua", []byte(routeFirst)); err != nil {
		t.Errorf("PolicyCheck: %v", err)
	}
	err := switchboard.PolicyCheck("lint.lua", []byte("x = 1\nlocal P = {}\nfunction P.route(call, agents, ctx) return {} end\nreturn P\n"))
	if !errors.Is(err, switchboard.ErrPolicy) || !strings.Contains(err.Error(), "lint.lua:1: ") {
		t.Errorf("lint: %v", err)
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
	pub, sec, err := switchboard.PolicyKeygen()
	if err != nil || len(pub) != 64 || len(sec) != 128 {
		t.Fatalf("PolicyKeygen: %q %q %v", pub, sec, err)
	}
	signed, err := switchboard.PolicySign([]byte(routeFirst), sec)
	if err != nil || !strings.HasPrefix(string(signed), routeFirst) || !strings.Contains(string(signed), "--@signature ") {
		t.Fatalf("PolicySign: %v", err)
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
