package switchboard

// The Go side of callbacks.c. A file with //export may only declare C in its
// preamble, so the trampolines live in callbacks.c.
//
// A Clock, Log or Sweep progress function runs on top of the engine's C
// frames, often inside an LMDB write transaction, with the engine's locks
// held. Nothing may unwind through those frames: the C code below would never
// get to commit or abort, unlock, or return.
//
//   - A panic is stopped here (protect), whatever its value — panic(nil)
//     included, which recover() cannot tell from no panic at all: a panic is
//     known by the function not returning, not by recover's value.
//   - runtime.Goexit (what t.Fatal, t.FailNow and t.SkipNow call) cannot be
//     stopped: recover() does not see it, and once it has started, the
//     goroutine's deferred calls run and the goroutine ends, abandoning the C
//     frames below mid-call. The write transaction then stays open for good:
//     every later write — this engine's next call, its Close, every other
//     engine and process on the data directory — waits for ever, and this
//     thread's count of callbacks (sbgo_depth in callbacks.c) stays up, so
//     Close on it would refuse as if called from a callback. No state the
//     binding could reach can be repaired from here, and the Go runtime gives
//     no way to resume the C code. So the callback's guard (goexitGuard),
//     which sees the function neither return nor panic, prints what happened
//     and the goroutine's stack and ends the process with status 2, as a Go
//     fatal error does: a crash that names the cause, not a hang that names
//     nothing. The process's death releases its LMDB locks (LMDB's mutexes are
//     robust): the other processes on the data directory go on, and the
//     transaction left open is rolled back.

/*
#include <stdint.h>
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"runtime/cgo"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
)

// protect runs f and reports whether it panicked, and with what value.
func protect(f func()) (panicked bool, value any) {
	returned := false
	defer func() {
		if !returned {
			// A panic (recover stops it, whatever its value) or a Goexit
			// (recover returns nil and the Goexit goes on: protect does not
			// return, and goexitGuard sees it).
			panicked, value = true, recover()
		}
	}()
	f()
	returned = true
	return false, nil
}

// goexitGuard is deferred first in each callback, and given whether the
// callback got to its end: when it did not, the goroutine is ending through
// runtime.Goexit (a panic is stopped by protect), and the process ends.
func goexitGuard(name string, returned *bool) {
	if *returned {
		return
	}
	os.Stderr.Write([]byte("switchboard: the " + name + " function called runtime.Goexit " +
		"(t.Fatal, t.FailNow, t.SkipNow?) inside a call on the engine; the engine's C code " +
		"below it cannot be unwound (it would hold its write transaction and locks for ever, " +
		"and every later call on the data directory would wait): ending the process\n\n"))
	os.Stderr.Write(debug.Stack())
	os.Exit(2)
}

// engineClock is what an engine's clock handle holds: its Clock, and the Log
// that a failing reading is said through (nil: stderr, once per engine).
type engineClock struct {
	clock  func() time.Time
	log    func(LogLevel, string)
	warned atomic.Bool
}

// failed says that a reading of the Clock failed, as the Python and Lua
// bindings say it: a LogError line through Log for each (numbers in it read
// [number], as the engine's own lines), else once on stderr.
func (ec *engineClock) failed(why string) {
	line := "the Clock function " + why + "; this reading is the system time"
	if r, err := Redact(strings.ReplaceAll(line, "\x00", " ")); err == nil {
		line = r
	}
	if ec.log == nil {
		if !ec.warned.Swap(true) {
			os.Stderr.WriteString("switchboard: " + line +
				" (said once; give Config a Log function to see each)\n")
		}
		return
	}
	if panicked, _ := protect(func() { ec.log(LogError, line) }); panicked {
		os.Stderr.WriteString("switchboard: the Log function panicked; line dropped\n")
	}
}

//export goSwitchboardClock
func goSwitchboardClock(h C.uintptr_t) C.int64_t {
	returned := false
	defer goexitGuard("Clock", &returned)
	ec := cgo.Handle(h).Value().(*engineClock)
	var t time.Time
	if panicked, v := protect(func() { t = ec.clock() }); panicked {
		// Fall back to the system clock and say so. The panic's value is
		// printed under protect too: its String method may panic as well.
		why := "panicked"
		protect(func() { why = fmt.Sprintf("panicked: %v", v) })
		ec.failed(why)
		t = time.Now()
	} else if t.Before(minClock) || t.After(maxClock) {
		// The engine's times are milliseconds from 1970 in an int64: the
		// zero time.Time (a clock never set) would date calls and records
		// in year 1, where no query by time finds them.
		ec.failed("returned " + t.UTC().Format(time.RFC3339Nano) +
			", before 1970 or past what the engine's milliseconds hold")
		t = time.Now()
	}
	returned = true
	return C.int64_t(t.UnixMilli())
}

var (
	minClock = time.UnixMilli(0)
	maxClock = time.UnixMilli(math.MaxInt64)
)

//export goSwitchboardLog
func goSwitchboardLog(h C.uintptr_t, level C.int, line *C.char) {
	returned := false
	defer goexitGuard("Log", &returned)
	f := cgo.Handle(h).Value().(func(LogLevel, string))
	s := C.GoString(line)
	if panicked, _ := protect(func() { f(LogLevel(level)+1, s) }); panicked {
		os.Stderr.WriteString("switchboard: the Log function panicked; line dropped\n")
	}
	returned = true
}

//export goSwitchboardProgress
func goSwitchboardProgress(h C.uintptr_t, done, total C.uint64_t) {
	returned := false
	defer goexitGuard("Sweep progress", &returned)
	cgo.Handle(h).Value().(*sweepProgress).call(uint64(done), uint64(total))
	returned = true
}
