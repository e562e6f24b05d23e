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
	"math"
	"os"
	"runtime/cgo"
	"runtime/debug"
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

//export goSwitchboardClock
func goSwitchboardClock(h C.uintptr_t) C.int64_t {
	returned := false
	defer goexitGuard("Clock", &returned)
	f := cgo.Handle(h).Value().(func() time.Time)
	var t time.Time
	if panicked, _ := protect(func() { t = f() }); panicked {
		// Fall back to the system clock and say so once.
		if !clockPanicked.Swap(true) {
			os.Stderr.WriteString("switchboard: the Clock function panicked; " +
				"using the system time\n")
		}
		t = time.Now()
	} else if t.Before(minClock) || t.After(maxClock) {
		// The engine's times are milliseconds from 1970 in an int64: the
		// zero time.Time (a clock never set) would date calls and records
		// in year 1, where no query by time finds them.
		if !clockOutOfRange.Swap(true) {
			os.Stderr.WriteString("switchboard: the Clock function returned " + t.String() +
				", before 1970 or past what the engine's milliseconds hold; using the system time\n")
		}
		t = time.Now()
	}
	returned = true
	return C.int64_t(t.UnixMilli())
}

var (
	clockPanicked   atomic.Bool
	clockOutOfRange atomic.Bool
	minClock        = time.UnixMilli(0)
	maxClock        = time.UnixMilli(math.MaxInt64)
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
