package switchboard_test

// The Clock, Log and Sweep progress functions run inside the engine's C
// frames: what a panic (of any value) and runtime.Goexit do there.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
)

// goexitChild, when set, names the callback that calls t.Fatal in a child
// run of TestGoexitInCallback.
const goexitChild = "SWITCHBOARD_TEST_GOEXIT"

// goexitIn is the child. Its callback ends the goroutine of a call with
// runtime.Goexit from inside the engine ("fatal": the test's goroutine, with
// t.Fatal); then the test uses the engine again and closes it.
func goexitIn(t *testing.T, which string) {
	var armed atomic.Bool
	exit := func() {
		if armed.Swap(false) {
			if which == "fatal" {
				t.Fatal("the clock gave up")
			}
			runtime.Goexit()
		}
	}
	cfg := switchboard.Config{DataDir: os.Getenv(goexitChild + "_DIR"), Sync: switchboard.SyncNone}
	switch which {
	case "clock", "fatal":
		cfg.Clock = func() time.Time { exit(); return time.Now() }
	case "log":
		// No policy directory: the offer logs a policy failure.
		cfg.Log = func(switchboard.LogLevel, string) { exit() }
	}
	eng, err := switchboard.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	must(t)(eng.QueuePut("acme", `{"id":"support"}`))
	armed.Store(true)
	call := func() {
		if which == "progress" {
			eng.Sweep(0, func(done, total uint64) { exit() })
		} else {
			eng.Submit("acme", offer("c1"))
		}
		t.Error("the call returned after its callback ended the goroutine")
	}
	if which == "fatal" {
		defer eng.Close()
		call()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		call()
	}()
	<-done
	eng.Submit("acme", offer("c2"))
	eng.Close()
	t.Error("the engine served on and closed")
}

// TestGoexitInCallback: runtime.Goexit (t.Fatal, t.FailNow, t.SkipNow) in a
// callback cannot be stopped and leaves the engine's C code half way through
// a write transaction: the next call, Close, and other processes on the data
// directory waited for ever. The binding ends the process at once, saying
// why. Each case runs in a child process (this test binary run again).
func TestGoexitInCallback(t *testing.T) {
	if which := os.Getenv(goexitChild); which != "" {
		goexitIn(t, which)
		return
	}
	for _, which := range []string{"clock", "log", "progress", "fatal"} {
		t.Run(which, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGoexitInCallback$", "-test.count=1")
			dir := t.TempDir()
			cmd.Env = append(os.Environ(), goexitChild+"="+which, goexitChild+"_DIR="+dir)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("the child hung (killed after 20 s):\n%s", out.String())
			}
			var ee *exec.ExitError
			name := map[string]string{"clock": "Clock", "log": "Log", "progress": "Sweep progress",
				"fatal": "Clock"}[which]
			if !errors.As(err, &ee) || ee.ExitCode() != 2 ||
				!strings.Contains(out.String(), "switchboard: the "+name+" function called runtime.Goexit") {
				t.Fatalf("the child ended with %v:\n%s", err, out.String())
			}
			if strings.Contains(out.String(), "the call returned") || strings.Contains(out.String(), "served on") {
				t.Errorf("the engine went on:\n%s", out.String())
			}
			// The transaction the child left open died with it: the data
			// directory serves another engine.
			served := make(chan error, 1)
			go func() {
				eng, err := switchboard.Open(switchboard.Config{DataDir: dir, Sync: switchboard.SyncNone, Log: quiet})
				if err == nil {
					_, err = eng.AccountPut(`{"id":"other"}`)
					eng.Close()
				}
				served <- err
			}()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("the data directory after the child: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the data directory after the child: a write still waits after 20 s")
			}
		})
	}
}

// TestNilPanicInCallbacks: panic(nil) is a panic like any other (recover
// returns nil for it before Go 1.21): the Clock falls back to the system
// time (it gave 0, 1970), the Log line is dropped, and Sweep panics once the
// sweep has returned (the panic was swallowed).
func TestNilPanicInCallbacks(t *testing.T) {
	var armed atomic.Bool
	eng, err := switchboard.Open(switchboard.Config{DataDir: t.TempDir(), Sync: switchboard.SyncNone,
		Clock: func() time.Time {
			if armed.Load() {
				panic(nil)
			}
			return time.Now()
		},
		Log: func(switchboard.LogLevel, string) {
			if armed.Load() {
				panic(nil)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	must(t)(eng.AccountPut(`{"id":"acme"}`))
	must(t)(eng.QueuePut("acme", `{"id":"support"}`))
	armed.Store(true)
	// No policy directory: the offer logs a policy failure too.
	if _, err := eng.Submit("acme", offer("c1")); err != nil {
		t.Fatal(err)
	}
	armed.Store(false)
	c, err := eng.CallGet("acme", "c1")
	if ms, _ := c["offered_ms"].(float64); err != nil || time.Since(time.UnixMilli(int64(ms))) > time.Hour {
		t.Errorf("offered_ms %v after panic(nil) in Clock: not the system time (%v)", c["offered_ms"], err)
	}
	calls, returned := 0, false
	func() {
		defer func() {
			if !returned && recover() != nil {
				t.Error("Sweep panicked with a value; the progress function's panic was panic(nil)")
			}
		}()
		eng.Sweep(0, func(done, total uint64) {
			calls++
			panic(nil)
		})
		returned = true
	}()
	if returned || calls != 1 {
		t.Errorf("panic(nil) in progress: Sweep returned %v, progress called %d times", returned, calls)
	}
	if _, err := eng.Stats(); err != nil {
		t.Errorf("the engine after the panics: %v", err)
	}
}
