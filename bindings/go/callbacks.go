package switchboard

// The Go side of callbacks.c. A file with //export may only declare C in its
// preamble, so the trampolines live in callbacks.c.

/*
#include <stdint.h>
*/
import "C"

import (
	"os"
	"runtime/cgo"
	"sync/atomic"
	"time"
)

//export goSwitchboardClock
func goSwitchboardClock(h C.uintptr_t) (ms C.int64_t) {
	f := cgo.Handle(h).Value().(func() time.Time)
	// A panic must not unwind through the engine's C frames (it holds a
	// transaction): fall back to the system clock and say so once.
	defer func() {
		if r := recover(); r != nil {
			if !clockPanicked.Swap(true) {
				os.Stderr.WriteString("switchboard: the Clock function panicked; " +
					"using the system time\n")
			}
			ms = C.int64_t(time.Now().UnixMilli())
		}
	}()
	return C.int64_t(f().UnixMilli())
}

var clockPanicked atomic.Bool

//export goSwitchboardLog
func goSwitchboardLog(h C.uintptr_t, level C.int, line *C.char) {
	f := cgo.Handle(h).Value().(func(LogLevel, string))
	defer func() {
		if r := recover(); r != nil {
			os.Stderr.WriteString("switchboard: the Log function panicked; line dropped\n")
		}
	}()
	f(LogLevel(level)+1, C.GoString(line))
}

//export goSwitchboardProgress
func goSwitchboardProgress(h C.uintptr_t, done, total C.uint64_t) {
	cgo.Handle(h).Value().(*sweepProgress).call(uint64(done), uint64(total))
}
