package switchboard_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchboard"
)

// tracked is whether fn's calls changed anything, failing the test on an
// error fn returns that is not want (nil: none).
func tracked(t *testing.T, eng *switchboard.Engine, want error, fn func() error) bool {
	t.Helper()
	changed, err := eng.TrackChanges(fn)
	if !errors.Is(err, want) {
		t.Fatalf("TrackChanges: %v, want %v", err, want)
	}
	return changed
}

func TestTrackChanges(t *testing.T) {
	clock := newClock()
	eng := open(t, filepath.Join(t.TempDir(), "data"), clock, nil)
	provision(t, eng, clock)
	submit := func(ev switchboard.Event) func() error {
		return func() error { _, err := eng.Submit("acme", ev); return err }
	}
	status := func(s switchboard.Status) func() error {
		return submit(switchboard.Event{Type: switchboard.AgentStatus, Agent: "ag0", Status: s})
	}
	cases := []struct {
		name string
		want bool
		err  error
		fn   func() error
	}{
		{"nothing called", false, nil, func() error { return nil }},
		{"an agent put", true, nil, func() error { _, err := eng.AgentPut("acme", agentDoc("ag9")); return err }},
		{"a read", false, nil, func() error { _, err := eng.AgentGet("acme", "ag0"); return err }},
		{"an agent's status set to the one it has", false, nil, status(switchboard.Available)},
		{"set to another", true, nil, status(switchboard.Paused)},
		{"a refused event", false, switchboard.ErrNotFound,
			submit(switchboard.Event{Type: switchboard.Hangup, Call: "nope"})},
		{"an offer", true, nil,
			submit(switchboard.Event{Type: switchboard.Offer, Call: "c1", Queue: "support", Caller: "+442079460001"})},
		{"a read after a put", true, nil, func() error {
			if _, err := eng.AgentPut("acme", agentDoc("ag8")); err != nil {
				return err
			}
			_, err := eng.AgentGet("acme", "ag8")
			return err
		}},
		{"a put on another goroutine", false, nil, func() error {
			done := make(chan error)
			go func() { _, err := eng.AgentPut("acme", agentDoc("ag7")); done <- err }()
			return <-done
		}},
		{"Sync", false, nil, eng.Sync},
	}
	for _, c := range cases {
		if got := tracked(t, eng, c.err, c.fn); got != c.want {
			t.Errorf("%s: changed %v, want %v", c.name, got, c.want)
		}
	}
	if _, err := eng.AgentGet("acme", "ag7"); err != nil {
		t.Errorf("the other goroutine's put was made: %v", err)
	}

	// Nested: the inner one's own calls, counted for the outer one too.
	var inner bool
	outer := tracked(t, eng, nil, func() error {
		inner = tracked(t, eng, nil, status(switchboard.Available))
		_, err := eng.AgentGet("acme", "ag0")
		return err
	})
	if !inner || !outer {
		t.Errorf("nested: inner %v, outer %v, want both true", inner, outer)
	}
	inner = true
	outer = tracked(t, eng, nil, func() error {
		if _, err := eng.AgentPut("acme", agentDoc("ag6")); err != nil {
			return err
		}
		inner = tracked(t, eng, nil, status(switchboard.Available))
		return nil
	})
	if inner || !outer {
		t.Errorf("nested after a change: inner %v, outer %v, want false, true", inner, outer)
	}

	// In a batch: each event's own.
	var got []bool
	err := eng.Batch(func() error {
		got = append(got, tracked(t, eng, nil, status(switchboard.Paused)))
		got = append(got, tracked(t, eng, nil, status(switchboard.Paused)))
		got = append(got, tracked(t, eng, switchboard.ErrNotFound,
			submit(switchboard.Event{Type: switchboard.Hangup, Call: "nope"})))
		got = append(got, tracked(t, eng, nil, submit(switchboard.Event{Type: switchboard.Abandon, Call: "c1"})))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, false, true}; !equalBools(got, want) {
		t.Errorf("in a batch: %v, want %v (a change, the same status again, a refusal, an abandon)", got, want)
	}

	var nilEng *switchboard.Engine
	if _, err := nilEng.TrackChanges(func() error { return nil }); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("TrackChanges on a nil engine: %v, want the closed engine's error", err)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stopsBlocked reports whether the calling thread has SIGTSTP, SIGTTIN and
// SIGTTOU (20 to 22: bits 19 to 21 of SigBlk) blocked; ok is false when its
// status in /proc cannot be read.
func stopsBlocked() (blocked, ok bool) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return false, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "SigBlk:") {
			m, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "SigBlk:")), 16, 64)
			if err != nil {
				return false, false
			}
			return m>>19&7 == 7, true
		}
	}
	return false, false
}

// The engine calls its clock inside each write transaction, on the thread
// that writes (a cgo callback runs on the thread that called C): the clock
// reads that thread's signal mask.
func TestDeferStopSignals(t *testing.T) {
	if _, ok := stopsBlocked(); !ok {
		t.Skip("no SigBlk in /proc/thread-self/status to read the signal mask from")
	}
	clock := newClock()
	var seen []bool
	eng, err := switchboard.Open(switchboard.Config{DataDir: filepath.Join(t.TempDir(), "data"),
		PolicyDir: policies, Sync: switchboard.SyncNone, Log: quiet,
		Clock: func() time.Time {
			b, _ := stopsBlocked()
			seen = append(seen, b)
			return clock.now()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	only := func(v bool) bool {
		for _, b := range seen {
			if b != v {
				return false
			}
		}
		return len(seen) > 0
	}
	provision(t, eng, clock)
	if !only(false) {
		t.Errorf("off (the default): writes saw the stop signals blocked: %v", seen)
	}
	func() {
		switchboard.DeferStopSignals(true)
		defer switchboard.DeferStopSignals(false)
		seen = nil
		must(t)(eng.AgentPut("acme", agentDoc("ag9")))
		if !only(true) {
			t.Errorf("on: an agent put did not run with SIGTSTP, SIGTTIN and SIGTTOU blocked: %v", seen)
		}
		seen = nil
		must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Offer, Call: "c1", Queue: "support",
			Caller: "+442079460001"}))
		if !only(true) {
			t.Errorf("on: an offer did not run with them blocked: %v", seen)
		}
	}()
	seen = nil
	must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "c1"}))
	if !only(false) {
		t.Errorf("off again: writes saw them blocked: %v", seen)
	}
}
