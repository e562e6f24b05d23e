package switchboard_test

// Engine.Batch: a goroutine's events in one write transaction, one commit.

import (
	"errors"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard"
)

// seenElsewhere reports whether a read on another goroutine — another OS
// thread, as the Batch's goroutine is locked to its own — finds the call, and
// its state.
func seenElsewhere(eng *switchboard.Engine, call string) (bool, string) {
	type answer struct {
		found bool
		state string
	}
	ch := make(chan answer)
	go func() {
		m, err := eng.CallGet("acme", call)
		state, _ := m["state"].(string)
		ch <- answer{err == nil, state}
	}()
	a := <-ch
	return a.found, a.state
}

func openBatch(t *testing.T, dir string, clock *fakeClock) *switchboard.Engine {
	t.Helper()
	// SyncDefer: data.mdb written with write() (SyncNone maps it), which the
	// failing-commit test needs.
	eng, err := switchboard.Open(switchboard.Config{DataDir: dir, PolicyDir: policies,
		Sync: switchboard.SyncDefer, Log: quiet, Clock: clock.now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

func TestBatch(t *testing.T) {
	clock := newClock()
	dir := t.TempDir()
	eng := openBatch(t, dir, clock)
	provision(t, eng, clock)

	var a1, a2 []switchboard.Action
	var failed, before error
	var seenBefore bool
	var readBack string
	err := eng.Batch(func() error {
		var err error
		if a1, err = eng.Submit("acme", offer("b1")); err != nil {
			return err
		}
		if m, err := eng.CallGet("acme", "b1"); err == nil {
			readBack, _ = m["state"].(string)
		}
		seenBefore, _ = seenElsewhere(eng, "b1")
		_, failed = eng.Submit("acme", switchboard.Event{Type: switchboard.RingResult, Call: "nope",
			Agent: "ag0", Outcome: switchboard.Answered})
		a2, before = eng.Submit("acme", offer("b2"))
		return nil
	})
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	r1, r2 := find(a1, switchboard.ActionRing, "b1"), find(a2, switchboard.ActionRing, "b2")
	if r1 == nil || r2 == nil || r1.Agent == r2.Agent || before != nil {
		t.Errorf("the batch's offers: their rings at once, b2 on another agent than b1: %v %v %v", a1, a2, before)
	}
	if readBack != "ringing" {
		t.Errorf("the batch's goroutine reads its events: b1 %q, want ringing", readBack)
	}
	if seenBefore {
		t.Error("another goroutine saw b1 before the batch ended")
	}
	var se *switchboard.Error
	if !errors.As(failed, &se) || se.Code != switchboard.ErrNotFound || se.Field != "call" {
		t.Errorf("a failing event in the batch: %v, want ErrNotFound naming call", failed)
	}
	for _, c := range []string{"b1", "b2"} {
		if found, state := seenElsewhere(eng, c); !found || state != "ringing" {
			t.Errorf("after Batch: %s %v %q, want stored and ringing", c, found, state)
		}
	}
	other, err := switchboard.Open(switchboard.Config{DataDir: dir, Sync: switchboard.SyncDefer, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	calls, err := other.CallList("acme", "")
	other.Close()
	if err != nil || len(calls) != 2 {
		t.Errorf("another engine on the data directory: %v %v, want b1 and b2", calls, err)
	}

	// fn's error: the events before it are committed all the same.
	gatewayErr := errors.New("the gateway's own failure")
	err = eng.Batch(func() error {
		must(t)(eng.Submit("acme", offer("b3")))
		return gatewayErr
	})
	if err != gatewayErr {
		t.Errorf("Batch returns fn's error: %v", err)
	}
	if found, _ := seenElsewhere(eng, "b3"); !found {
		t.Error("the events before fn's error were not committed")
	}

	// A panic: committed too, and the panic goes on.
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("the panic goes on out of Batch: %v", r)
			}
		}()
		eng.Batch(func() error {
			must(t)(eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "b3"}))
			panic("boom")
		})
	}()
	if m, err := eng.CallGet("acme", "b3"); err != nil || m["outcome"] != "abandoned" {
		t.Errorf("the abandon before the panic: %v %v, want committed", m, err)
	}

	// Nested: the inner Batch joins the outer, which commits; Close inside is
	// refused.
	var innerState string
	var closeErr error
	err = eng.Batch(func() error {
		if err := eng.Batch(func() error {
			_, err := eng.Submit("acme", switchboard.Event{Type: switchboard.Abandon, Call: "b2"})
			return err
		}); err != nil {
			return err
		}
		_, innerState = seenElsewhere(eng, "b2")
		closeErr = eng.Close()
		return nil
	})
	if err != nil || innerState != "ringing" {
		t.Errorf("nested Batch: %v, b2 %q elsewhere after the inner one, want ringing (not committed)", err, innerState)
	}
	if !errors.Is(closeErr, switchboard.ErrState) {
		t.Errorf("Close inside a Batch function: %v, want ErrState", closeErr)
	}
	if m, err := eng.CallGet("acme", "b2"); err != nil || m["outcome"] != "abandoned" {
		t.Errorf("the outer Batch committed the abandon: %v %v", m, err)
	}

	// Another goroutine's Batch open: this one waits for its end; Close
	// waits for both.
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- eng.Batch(func() error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	second := make(chan error)
	go func() {
		second <- eng.Batch(func() error {
			_, err := eng.Submit("acme", offer("b4"))
			return err
		})
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-second:
		t.Errorf("a Batch while another goroutine's is open returned at once: %v, want it to wait", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the first goroutine's Batch: %v", err)
	}
	if err := <-second; err != nil {
		t.Errorf("the waiting Batch, once the first ended: %v", err)
	}
	if found, _ := seenElsewhere(eng, "b4"); !found {
		t.Error("the waiting Batch's offer was not stored")
	}
	inside, release, done = make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- eng.Batch(func() error {
			close(inside)
			<-release
			_, err := eng.Submit("acme", offer("b5"))
			return err
		})
	}()
	<-inside
	closed := make(chan error)
	go func() { closed <- eng.Close() }()
	// Close has begun once the engine says it is closing (a loaded machine
	// may take a while to run its goroutine); it must then wait for the
	// Batch, not return, for as long as the Batch stays open.
	for limit := time.Now().Add(60 * time.Second); !switchboard.Closing(eng) && time.Now().Before(limit); {
		time.Sleep(time.Millisecond)
	}
	if !switchboard.Closing(eng) {
		t.Error("Close did not begin in 60 s while another goroutine's Batch was open")
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case <-closed:
		t.Error("Close returned while another goroutine's Batch was open")
	default:
	}
	close(release)
	if err := <-done; !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("a submit in the Batch while Close waits: %v, want ErrInvalid (closing)", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := eng.Batch(func() error { return nil }); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("Batch on a closed engine: %v, want ErrInvalid", err)
	}
}

// TestBatchThreadLocked: the engine's batch is the OS thread's; a goroutine
// parked in fn (a sleep, a channel, Gosched) may come back on another thread,
// whose submit would not be the batch's (it would wait for the batch's write
// lock for ever) and whose end would be "another thread's batch". Batch locks
// the goroutine to its thread: many goroutines' batches (one at a time, the
// others waiting), parked between events while other goroutines keep the
// threads busy, all commit, none refused with SB_ESTATE.
func TestBatchThreadLocked(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	clock := newClock()
	// Closed here only when the batches end: Close would wait for ever for
	// the stuck ones of a binding that does not lock the thread.
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), PolicyDir: policies,
		Sync: switchboard.SyncNone, Log: quiet, Clock: clock.now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	provision(t, eng, clock)
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for i := 0; i < 4; i++ { // goroutines that keep the other threads busy
		churn.Add(1)
		go func() {
			defer churn.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = eng.CallList("acme", "")
					runtime.Gosched()
				}
			}
		}()
	}
	const workers, batches, events = 4, 10, 6
	errs := make(chan error, workers*batches)
	finished := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for b := 0; b < batches; b++ {
					errs <- eng.Batch(func() error {
						for i := 0; i < events; i++ {
							id := "w" + string(rune('a'+w)) + "-" + string(rune('a'+b)) + "-" + string(rune('a'+i))
							if _, err := eng.Submit("acme", offer(id)); err != nil {
								return err
							}
							switch i % 3 {
							case 0:
								time.Sleep(time.Millisecond)
							case 1:
								runtime.Gosched()
							default:
								ch := make(chan struct{})
								go func() { close(ch) }()
								<-ch
							}
						}
						return nil
					})
				}
			}(w)
		}
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		t.Fatal("batches still running after 60 s: a submit on another thread than its batch's waits for ever")
	}
	defer eng.Close()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Batch: %v", err)
		}
	}
	calls, err := eng.CallList("acme", "")
	if err != nil || len(calls) != workers*batches*events {
		t.Errorf("calls stored: %d %v, want %d", len(calls), err, workers*batches*events)
	}
}

// TestBatchCommitFails: the batch's commit fails (a write past the process's
// file size limit, RLIMIT_FSIZE, as a full disk): Batch returns the engine's
// error, and none of the batch's events happened.
func TestBatchCommitFails(t *testing.T) {
	clock := newClock()
	eng := openBatch(t, t.TempDir(), clock)
	provision(t, eng, clock)
	st, err := eng.Stats()
	if err != nil {
		t.Fatal(err)
	}
	lmdb, _ := st["lmdb"].(map[string]any)
	used, _ := lmdb["used_bytes"].(float64)
	if used <= 0 {
		t.Fatalf("no lmdb.used_bytes in the stats: %v", st)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var first []switchboard.Action
	submitted := 0
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: uint64(used), Max: old.Max}); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	err = eng.Batch(func() error {
		for i := 0; i < 300; i++ {
			ev := offer("f" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26)))
			ev.Attrs = map[string]any{"pad": strings.Repeat("x", 200)}
			acts, err := eng.Submit("acme", ev)
			if err != nil {
				return err
			}
			if i == 0 {
				first = acts
			}
			submitted++
		}
		return nil
	})
	// Nothing written (no test output either) until the limit is back.
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatalf("setrlimit back: %v", rerr)
	}
	if submitted != 300 || find(first, switchboard.ActionRing, "") == nil {
		t.Errorf("the batch's events gave their actions at once: %d submitted, first %v", submitted, first)
	}
	var se *switchboard.Error
	if !errors.As(err, &se) || se.Code != switchboard.ErrFull || !strings.Contains(se.Message, "commit the batch") {
		t.Fatalf("Batch whose commit fails: %v, want ErrFull saying the batch's commit failed", err)
	}
	if calls, err := eng.CallList("acme", ""); err != nil || len(calls) != 0 {
		t.Errorf("after the failed commit: %d calls %v, want none (the batch's events did not happen)", len(calls), err)
	}
	if _, err := eng.Submit("acme", offer("g1")); err != nil {
		t.Errorf("the engine goes on afterwards: %v", err)
	}
}
