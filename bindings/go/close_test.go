package switchboard_test

// Closing an engine while calls are in flight, from inside its callbacks, and
// arguments C cannot take.

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
)

// TestCloseFromCallbacks: Close from a Clock, Log or Sweep progress function
// runs inside a call on the engine; it used to wait for that call, which
// waited for it (a deadlock). It returns ErrState and the engine serves on.
func TestCloseFromCallbacks(t *testing.T) {
	var eng *switchboard.Engine
	var closeNow atomic.Bool
	var fromClock, fromLog error
	var clockCalls, logCalls atomic.Int32
	clock := newClock()
	cfg := switchboard.Config{DataDir: t.TempDir(), PolicyDir: policies, Sync: switchboard.SyncNone,
		Clock: func() time.Time {
			if closeNow.CompareAndSwap(true, false) {
				clockCalls.Add(1)
				fromClock = eng.Close()
			}
			return clock.now()
		},
		Log: func(_ switchboard.LogLevel, line string) {
			if strings.Contains(line, "backup written") {
				logCalls.Add(1)
				fromLog = eng.Close()
			}
		}}
	eng, err := switchboard.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountPut(`{"id":"acme"}`))

	closeNow.Store(true)
	if _, err := eng.AccountPut(`{"id":"acme2"}`); err != nil {
		t.Fatalf("the call whose clock closed: %v", err)
	}
	if clockCalls.Load() != 1 || !errors.Is(fromClock, switchboard.ErrState) {
		t.Errorf("Close from the clock: %v (clock closed %d times)", fromClock, clockCalls.Load())
	}

	if _, err := eng.Backup(filepath.Join(t.TempDir(), "copy")); err != nil {
		t.Fatalf("the backup whose log line closed: %v", err)
	}
	if logCalls.Load() != 1 || !errors.Is(fromLog, switchboard.ErrState) {
		t.Errorf("Close from the log: %v", fromLog)
	}

	// A sweep with something to do, so progress is called.
	if err := eng.AccountDelete("acme2"); err != nil {
		t.Fatal(err)
	}
	var fromProgress error
	sw, err := eng.Sweep(0, func(done, total uint64) {
		if fromProgress == nil {
			fromProgress = eng.Close()
		}
	})
	if err != nil || !sw.Done {
		t.Fatalf("the sweep whose progress closed: %+v %v", sw, err)
	}
	var se *switchboard.Error
	if !errors.As(fromProgress, &se) || se.Code != switchboard.ErrState || !strings.Contains(se.Message, "Close") {
		t.Errorf("Close from progress: %v", fromProgress)
	}
	if _, err := eng.AccountGet("acme"); err != nil {
		t.Errorf("the engine no longer serves: %v", err)
	}
	if err := eng.Close(); err != nil {
		t.Errorf("Close after the callbacks: %v", err)
	}
	if _, err := eng.AccountGet("acme"); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("a closed engine: %v", err)
	}
}

// TestCloseWaitsForCalls: Close on one goroutine while another is inside a
// call waits for that call; calls made meanwhile fail at once with
// ErrInvalid (they used to wait behind Close: a Sweep progress function
// calling the engine then hung for ever).
func TestCloseWaitsForCalls(t *testing.T) {
	inside, release := make(chan struct{}), make(chan struct{})
	var block atomic.Bool
	clock := newClock()
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone, Log: quiet,
		Clock: func() time.Time {
			if block.CompareAndSwap(true, false) {
				close(inside)
				<-release
			}
			return clock.now()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountPut(`{"id":"acme"}`))

	block.Store(true)
	var wg sync.WaitGroup
	var putErr, closeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, putErr = eng.AccountPut(`{"id":"slow"}`)
	}()
	<-inside
	closed := make(chan struct{})
	go func() {
		closeErr = eng.Close()
		close(closed)
	}()
	// Once Close has begun (it waits for the call in flight), calls are
	// refused at once (a call reaching the engine now could wait behind the
	// one in flight).
	for i := 0; i < 100000 && !switchboard.Closing(eng); i++ {
		time.Sleep(time.Millisecond)
	}
	_, refused := eng.Stats()
	var se *switchboard.Error
	if !errors.As(refused, &se) || se.Code != switchboard.ErrInvalid || !strings.Contains(se.Message, "closing") {
		t.Errorf("a call while Close waits: %v", refused)
	}
	if _, ok := eng.NextDeadline(); ok {
		t.Error("NextDeadline while closing reports a timer")
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a call was in flight")
	default:
	}
	close(release)
	wg.Wait()
	<-closed
	if putErr != nil || closeErr != nil {
		t.Errorf("the call in flight: %v; Close: %v", putErr, closeErr)
	}
	if _, err := eng.Stats(); !errors.Is(err, switchboard.ErrInvalid) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Close: %v", err)
	}
}

// TestClosedWithoutError: NextDeadline and APIKeyVerify have no error to
// return, so a closed engine is told by their zero answers (the README
// says so): no timer, and no key that verifies, even those that did.
func TestClosedWithoutError(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	provision(t, eng, clock)
	must(t)(eng.Submit("acme", offer("c1")))
	_, key, err := eng.APIKeyCreate("acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := eng.NextDeadline(); !ok || !eng.APIKeyVerify("acme", key) {
		t.Fatal("open: a ring timeout pending and the key verifying")
	}
	if eng.Closed() {
		t.Error("Closed on an open engine: true")
	}
	eng.Close()
	// Closed tells it apart from an engine with no timer or an unknown key
	// (Python's Engine.closed, Lua's eng:closed()).
	if !eng.Closed() {
		t.Error("Closed after Close: false")
	}
	var none *switchboard.Engine
	if !none.Closed() {
		t.Error("Closed on a nil *Engine: false")
	}
	// A nil *Engine (an Open that failed, closed by a defer written before
	// the error check) is a closed engine, not a nil dereference.
	if err := none.Close(); err != nil {
		t.Errorf("Close on a nil *Engine: %v", err)
	}
	if _, err := none.AgentGet("acme", "ag0"); !errors.Is(err, switchboard.ErrInvalid) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("AgentGet on a nil *Engine: %v", err)
	}
	if err := none.Batch(func() error { return nil }); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("Batch on a nil *Engine: %v", err)
	}
	if _, ok := none.NextDeadline(); ok || none.APIKeyVerify("acme", key) {
		t.Error("NextDeadline or APIKeyVerify on a nil *Engine: a timer or true")
	}
	if p := none.AgentPages("acme", 10); p.Next() || !errors.Is(p.Err(), switchboard.ErrInvalid) {
		t.Errorf("AgentPages on a nil *Engine: %v", p.Err())
	}
	if d, ok := eng.NextDeadline(); ok || !d.IsZero() {
		t.Errorf("NextDeadline on a closed engine: %v %v, want no timer", d, ok)
	}
	if eng.APIKeyVerify("acme", key) {
		t.Error("APIKeyVerify on a closed engine: true")
	}
	if _, err := eng.Tick(); !errors.Is(err, switchboard.ErrInvalid) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Tick, which can say so: %v", err)
	}
}

// TestArgumentsRefused: what C cannot take as given is refused, naming the
// argument, and changes nothing.
func TestArgumentsRefused(t *testing.T) {
	clock := newClock()
	eng := open(t, t.TempDir(), clock, nil)
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	var se *switchboard.Error
	check := func(what string, err error, code switchboard.Code, field string) {
		t.Helper()
		if !errors.As(err, &se) || se.Code != code || se.Field != field {
			t.Errorf("%s: %v, want %s field %q", what, err, code.Name(), field)
		}
	}
	_, err := eng.AgentGet("acme", "ag0\x00x")
	check("NUL in the agent", err, switchboard.ErrInvalid, "agent")
	if err != nil && !strings.Contains(err.Error(), "agent holds a NUL byte") {
		t.Errorf("the message names the argument: %v", err)
	}
	_, err = eng.HoldRelease("acme\x00", "h1")
	check("NUL in the account", err, switchboard.ErrInvalid, "account")
	_, err = eng.HoldGet("acme", "h1\x00")
	check("NUL in a hold id", err, switchboard.ErrInvalid, "hold_id")
	_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Hangup, Call: "c1\x00"})
	check("NUL in the event's call", err, switchboard.ErrInvalid, "call")
	// json.Marshal writes a NUL in an attribute as \u0000, which the engine
	// refused as "'attrs' must be a JSON object".
	must(t)(eng.QueuePut("acme", `{"id":"support"}`))
	_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "c1", Queue: "support",
		Caller: "+442079460001", Attrs: map[string]any{"lang": "de", "x_header": "abc\x00def"}})
	check("NUL in an attribute", err, switchboard.ErrInvalid, "attrs.x_header")
	_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "c1", Queue: "support",
		Caller: "+442079460001", Attrs: map[string]any{"tags": []any{"a", map[string]any{"k\x00": 1}}}})
	check("NUL in a nested attribute's name", err, switchboard.ErrInvalid, "attrs.tags[1]")
	_, err = eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "c1", Queue: "support",
		Caller: "+442079460001", Attrs: map[string]any{"h": struct{ V string }{"a\x00"}}})
	check("NUL in an attribute marshalled from a struct", err, switchboard.ErrInvalid, "attrs.h.V")
	// A document given as a Go value, as an event: the engine refused its
	// \u0000 naming no field ("strings may not contain \u0000 (line 1
	// column 29)", of JSON the caller never wrote).
	_, err = eng.AgentPut("acme", map[string]any{"id": "bob", "name": "B\x00b"})
	check("NUL in a document's field", err, switchboard.ErrInvalid, "name")
	if err != nil && !strings.Contains(err.Error(), "name holds a NUL byte (a C string would end there)") {
		t.Errorf("the message names the field: %v", err)
	}
	_, err = eng.AgentPut("acme", map[string]any{"id": "bob", "devices": map[string]any{"softphone": "sip:b\x00@pbx"}})
	check("NUL in a nested field", err, switchboard.ErrInvalid, "devices.softphone")
	_, err = eng.QueuePut("acme", struct {
		ID      string   `json:"id"`
		Members []string `json:"skills"`
	}{"q2", []string{"en", "d\x00e"}})
	check("NUL in a struct's list", err, switchboard.ErrInvalid, "skills[1]")
	_, err = eng.AgentPut("acme", map[string]any{"id": "bob", "n\x00": "x"})
	check("NUL in a document's name", err, switchboard.ErrInvalid, "")
	_, err = eng.HoldPlace("acme", switchboard.HoldRequest{Number: "+442079460001", Reason: "case\x00 7"})
	check("NUL in a hold's reason", err, switchboard.ErrInvalid, "reason")
	if _, err := eng.AgentGet("acme", "bob"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("a refused agent was made: %v", err)
	}
	if c, err := eng.CallGet("acme", "c1"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("a refused offer made a call: %v %v", c, err)
	}
	_, err = switchboard.Open(switchboard.Config{DataDir: t.TempDir() + "\x00x"})
	check("NUL in the data directory", err, switchboard.ErrInvalid, "data_dir")
	_, err = switchboard.PolicySign([]byte("return {}"), "ab\x00")
	check("NUL in the secret key", err, switchboard.ErrInvalid, "secret_key")
	// A negative budget was taken as none at all: a sweep until nothing is
	// due, however long.
	_, err = eng.Sweep(-time.Second, nil)
	check("Sweep(-1s)", err, switchboard.ErrInvalid, "budget")
	// A negative limit was taken as the default page.
	_, _, err = eng.AuditList("acme", 0, -1)
	check("AuditList(limit -1)", err, switchboard.ErrInvalid, "limit")
}

// More calls in flight than the pool keeps idle results for: the extra
// results are freed as the calls end, not kept until Close (each holds the
// memory of its last answer).
func TestResultPoolBounded(t *testing.T) {
	eng := open(t, t.TempDir(), nil, nil)
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	for burst := 0; burst < 3; burst++ {
		if err := switchboard.Borrow(eng, 3*switchboard.PoolSize); err != nil {
			t.Fatal(err)
		}
		if n := switchboard.LiveResults(eng); n > switchboard.PoolSize {
			t.Fatalf("after burst %d of %d calls at once: %d results held (pool of %d)", burst,
				3*switchboard.PoolSize, n, switchboard.PoolSize)
		}
	}
	// The same with real calls from many goroutines at once.
	for burst := 0; burst < 3; burst++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 200; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := eng.AgentList("acme"); err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if n := switchboard.LiveResults(eng); n > switchboard.PoolSize {
			t.Fatalf("after 200 goroutines' calls: %d results held (pool of %d)", n, switchboard.PoolSize)
		}
	}
	// Close frees those in the pool, and a result taken from it works.
	if err := switchboard.Borrow(eng, 1); err != nil {
		t.Fatal(err)
	}
	eng.Close()
	if n := switchboard.LiveResults(eng); n != 0 {
		t.Errorf("after Close: %d results held", n)
	}
}

// openFiles counts this process's open file descriptors.
func openFiles(t *testing.T) int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(fds)
}

// TestDroppedEngineClosed: an Engine dropped without Close kept its data
// directory's files open, its memory and its Clock and Log functions for the
// life of the process (Python's and Lua's engines close when collected): a
// gateway opening one per request ran out of file descriptors. The garbage
// collector now closes it.
func TestDroppedEngineClosed(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	open := func() *switchboard.Engine {
		eng, err := switchboard.Open(switchboard.Config{DataDir: dir, PolicyDir: policies,
			Sync: switchboard.SyncNone, Clock: clock.now, Log: func(switchboard.LogLevel, string) {}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.AccountPut(`{"id":"acme"}`); err != nil {
			t.Fatal(err)
		}
		return eng
	}
	open().Close() // the first opens what the process keeps for the directory
	before := openFiles(t)
	const n = 20
	// Held until counted: a collection may come at any time (the sanitizer
	// build's allocations bring one on), and would close one of them early.
	engs := make([]*switchboard.Engine, n)
	for i := range engs {
		engs[i] = open()
	}
	if open := openFiles(t); open < before+n {
		t.Fatalf("%d engines open: %d descriptors, %d before", n, open, before)
	}
	runtime.KeepAlive(engs)
	engs = nil // dropped without Close
	// Finalizers run on a goroutine of their own after a collection: wait
	// for it (the limit only keeps a failure from hanging the test).
	for limit := time.Now().Add(30 * time.Second); openFiles(t) > before; {
		if time.Now().After(limit) {
			t.Fatalf("%d engines dropped: %d descriptors still open, %d before", n, openFiles(t), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	// The data survived them: each committed its account before it went.
	eng, err := switchboard.Open(switchboard.Config{DataDir: dir, PolicyDir: policies})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountGet("acme"))
}

// TestInvalidUTF8Refused: json.Marshal writes each byte of a string that is
// not UTF-8 as U+FFFD, so a document, an attribute or a hold reason holding
// such bytes (a SIP display name in Latin-1, say) was stored with characters
// the gateway never gave, where the same JSON text is refused. It is refused,
// naming where, and changes nothing.
func TestInvalidUTF8Refused(t *testing.T) {
	eng := open(t, t.TempDir(), newClock(), nil)
	var se *switchboard.Error
	check := func(what string, err error, field string) {
		t.Helper()
		if !errors.As(err, &se) || se.Code != switchboard.ErrInvalid || se.Field != field ||
			!strings.Contains(se.Message, "not valid UTF-8") {
			t.Errorf("%s: %v, want SB_EINVAL field %q, not valid UTF-8", what, err, field)
		}
	}
	_, err := eng.AccountPut(map[string]any{"id": "acme", "name": "M\xfcller GmbH"})
	check("an account's name", err, "name")
	if _, err := eng.AccountGet("acme"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("the refused account was made: %v", err)
	}
	must(t)(eng.AccountPut(map[string]any{"id": "acme", "name": "M\u00fcller \ufffd"}))
	type device struct {
		Softphone string `json:"softphone"`
	}
	_, err = eng.AgentPut("acme", struct {
		ID      string `json:"id"`
		Devices device `json:"devices"`
	}{"alice", device{"sip:al\xe9@pbx.example"}})
	check("an agent's device, from a struct", err, "devices.softphone")
	must(t)(eng.QueuePut("acme", `{"id":"support"}`))
	offer := switchboard.Event{Type: switchboard.Offer, Call: "c1", Queue: "support",
		Caller: "+442079460001"}
	offer.Attrs = map[string]any{"lang": "de", "display": "J\xf6rg"}
	_, err = eng.Submit("acme", offer)
	check("an attribute", err, "attrs.display")
	offer.Attrs = map[string]any{"tags": []any{"a", map[string]any{"k\xff": 1}}}
	_, err = eng.Submit("acme", offer)
	check("a nested attribute's name", err, "attrs.tags[1]")
	if c, err := eng.CallGet("acme", "c1"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("a refused offer made a call: %v %v", c, err)
	}
	_, err = eng.HoldPlace("acme", switchboard.HoldRequest{Number: "+442079460001", Reason: "case \xa71"})
	check("a hold's reason", err, "reason")
	if holds, err := eng.HoldList("acme"); err != nil || len(holds) != 0 {
		t.Errorf("the refused hold was placed: %v %v", holds, err)
	}
	// Bytes are not text: json.Marshal writes them as base64.
	offer.Attrs = map[string]any{"raw": []byte{0xff}}
	must(t)(eng.Submit("acme", offer))
}
