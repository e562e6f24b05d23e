// Package switchboard embeds the Switchboard call-routing engine in Go.
//
// It is a cgo binding of the C library (engine/include/switchboard.h, the
// engine's manual): for every call that reaches a queue the engine decides
// which agent rings and on which device by asking a Lua policy, and keeps all
// state in LMDB under a data directory, one transaction per event.
//
//	eng, err := switchboard.Open(switchboard.Config{DataDir: "/var/lib/switchboard",
//		PolicyDir: "/etc/switchboard/policies"})
//	if err != nil { ... }
//	defer eng.Close()
//	actions, err := eng.Submit("acme", switchboard.Event{Type: switchboard.Offer,
//		Call: "c1", Queue: "support", Caller: "+442079460001"})
//	for _, a := range actions {
//		if a.Type == switchboard.ActionRing { fmt.Println("ring", a.Agent, "at", a.URI) }
//	}
//
// Accounts, agents, queues and memberships go in as JSON documents — []byte,
// string, json.RawMessage, or any value encoding/json can marshal — and come
// back as map[string]any. Events go in as Event values (or raw JSON with
// SubmitJSON); the actions they cause come back as []Action. Failures are
// *Error values carrying the engine's code, message and offending field;
// errors.Is(err, switchboard.ErrNotFound) tests the code.
//
// An Engine may be used from many goroutines at once; Close waits for the
// calls in flight. Several engines — in one process or many — may open the
// same data directory.
package switchboard

/*
#cgo CFLAGS: -I${SRCDIR}/../../engine/include -Wall -Wextra -Wno-unused-parameter
#cgo LDFLAGS: -L${SRCDIR}/../../build -l:libswitchboard.a
#cgo pkg-config: lua5.4 lmdb libsodium jansson
#cgo LDFLAGS: -lpthread -lm
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "switchboard.h"

void sbgo_set_clock(sb_config *cfg, uintptr_t handle);
void sbgo_set_log(sb_config *cfg, uintptr_t handle);
int sbgo_in_callback(void);
uintptr_t sbgo_thread(void);
*/
import "C"

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"runtime/cgo"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Version is the version of the linked library, e.g. "0.2.0".
func Version() string { return C.GoString(C.sb_version()) }

// Redact returns text with every phone number in it read "[number]", as the
// engine's own log lines and audit reasons are (sb_redact in switchboard.h
// says what counts as a number): for a gateway's own log lines. A NUL byte
// in text is refused (ErrInvalid naming "text").
func Redact(text string) (string, error) {
	cs, block, err := cstrings("text", text)
	if err != nil {
		return "", err
	}
	defer C.free(block)
	n := 3*len(text) + 1 // the shortest number, "+12", reads as 8 bytes
	out := C.malloc(C.size_t(n))
	if out == nil {
		return "", &Error{Code: ErrNoMemory, Message: "out of memory"}
	}
	defer C.free(out)
	C.sb_redact(cs[0], (*C.char)(out), C.size_t(n))
	return C.GoString((*C.char)(out)), nil
}

// DeferStopSignals switches (true) or leaves (false, the default) the
// process's write transactions running with SIGTSTP, SIGTTIN and SIGTTOU
// blocked in the thread that writes (sb_defer_stop_signals): a Ctrl-Z then
// stops a command-line tool between transactions, not inside one, where it
// would hold the data directory's one writer and every other process's
// writes (a daemon's) would wait until it was continued. For every engine of
// the process, from the next write transaction on; the thread's mask is put
// back as each ends, and a stop that came meanwhile takes effect then. A
// stop sent to the process goes to any thread that has it unblocked and
// stops them all, and the Go runtime's other threads keep the three
// unblocked: in a Go program the switch keeps out of a write transaction a
// stop sent to the writing thread, while a Ctrl-Z sent to the process may
// still stop it inside one.
func DeferStopSignals(on bool) {
	v := C.int(0)
	if on {
		v = 1
	}
	C.sb_defer_stop_signals(v)
}

// ---------------------------------------------------------------------------
// Errors

// Code is one of the engine's SB_E* error codes. Codes are errors themselves,
// so they serve as sentinels: errors.Is(err, ErrNotFound).
type Code int

// The engine's error codes (switchboard.h).
const (
	ErrInvalid  Code = C.SB_EINVAL    // bad argument or malformed input; see Field
	ErrNotFound Code = C.SB_ENOTFOUND // no such account/agent/queue/call/policy
	ErrExists   Code = C.SB_EEXIST    // already exists (a call id offered twice)
	ErrState    Code = C.SB_ESTATE    // event not valid in the current state
	ErrPolicy   Code = C.SB_EPOLICY   // a policy failed to compile, load or validate
	ErrFull     Code = C.SB_EFULL     // LMDB map or disk full; nothing was written
	ErrStore    Code = C.SB_ESTORE    // storage error (I/O, corrupt record)
	ErrNoMemory Code = C.SB_ENOMEM    // out of memory; nothing was written
	ErrBusy     Code = C.SB_EBUSY     // another backup is being written to the same place
	ErrAuth     Code = C.SB_EAUTH     // credentials did not verify
	ErrLimit    Code = C.SB_ELIMIT    // a configured limit was reached
	ErrCrypto   Code = C.SB_ECRYPTO   // key file or sealed data could not be used
	ErrVersion  Code = C.SB_EVERSION  // data directory written by a newer format
	ErrHold     Code = C.SB_EHOLD     // legal hold prevents the operation
)

// Error returns the code's static message, e.g. "SB_ENOTFOUND: not found".
func (c Code) Error() string { return C.GoString(C.sb_strerror(c.c())) }

// Name returns the code's name, e.g. "SB_ENOTFOUND" (sb_code_name), as the
// engine's JSON "code" has it; "SB_E?" for a number that is no code.
func (c Code) Name() string { return C.GoString(C.sb_code_name(c.c())) }

// c is the code as C's int: one past its range is no code (-1), not the
// low bits (Code(1<<40) would read as SB_OK).
func (c Code) c() C.int {
	if int64(c) != int64(int32(c)) {
		return -1
	}
	return C.int(c)
}

// Error is a failure reported by the engine.
type Error struct {
	Code    Code   // the SB_E* code
	Message string // the engine's message (policy errors carry file:line)
	Field   string // the offending input field, e.g. "devices.mobile", or ""
	// Actions: what the failed call did all the same, most often none: an
	// event or a tick whose sync failed after it committed (ErrStore,
	// "sync: ...") stands, and these are its actions, to apply as on success
	// (switchboard.h, sb_submit and sb_tick).
	Actions []Action
}

func (e *Error) Error() string {
	s := e.Code.Name() + ": " + e.Message
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// Unwrap returns the code, so errors.Is(err, ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Code }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

var (
	errClosed  = &Error{Code: ErrInvalid, Message: "the engine is closed"}
	errClosing = &Error{Code: ErrInvalid, Message: "the engine is closing"}
)

func resultError(rc C.int, res *C.sb_result) error {
	e := &Error{Code: Code(rc), Message: C.GoString(C.sb_result_message(res))}
	if f := C.sb_result_field(res); f != nil {
		e.Field = C.GoString(f)
	}
	if e.Message == "" {
		e.Message = strings.TrimPrefix(e.Code.Error(), e.Code.Name()+": ")
	}
	if C.sb_result_count(res) > 0 {
		e.Actions = resultActions(res)
	}
	return e
}

// ---------------------------------------------------------------------------
// Configuration

// SyncMode is the durability of committed events.
type SyncMode int

const (
	// SyncGroup commits, then shares one sync among concurrent events; each
	// returns only once it is synced (the default).
	SyncGroup SyncMode = C.SB_SYNC_GROUP
	// SyncSync syncs every event on its own before it returns.
	SyncSync SyncMode = C.SB_SYNC_SYNC
	// SyncNone never syncs (tests, simulations).
	SyncNone SyncMode = C.SB_SYNC_NONE
	// SyncDefer commits without syncing; call Engine.Sync before acknowledging.
	SyncDefer SyncMode = C.SB_SYNC_DEFER
)

// LogLevel is the severity of a log line. The zero value means "default"
// (LogInfo) in Config.
type LogLevel int

const (
	LogError LogLevel = iota + 1
	LogWarn
	LogInfo
	LogDebug
)

func (l LogLevel) String() string {
	switch l {
	case LogError:
		return "error"
	case LogWarn:
		return "warn"
	case LogInfo:
		return "info"
	case LogDebug:
		return "debug"
	}
	return fmt.Sprintf("LogLevel(%d)", int(l))
}

// ManualClock is a clock moved by hand, for Config.Clock (tests,
// simulations): give its Now method as Config.Clock, then Set or Advance it
// and Tick. What the Lua binding's clock = ms with eng:set_clock and
// Python's clock=<ms> with set_clock give. Safe for concurrent use.
//
//	clk := switchboard.NewManualClock(time.UnixMilli(1767571200000))
//	eng, err := switchboard.Open(switchboard.Config{DataDir: dir, Clock: clk.Now})
//	...
//	clk.Advance(20 * time.Second)
//	actions, err := eng.Tick()
type ManualClock struct {
	ms atomic.Int64 // Unix milliseconds
}

// NewManualClock returns a ManualClock reading t (to the millisecond).
func NewManualClock(t time.Time) *ManualClock {
	c := &ManualClock{}
	c.Set(t)
	return c
}

// Now is the clock's time: give it as Config.Clock.
func (c *ManualClock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

// Set moves the clock to t (to the millisecond).
func (c *ManualClock) Set(t time.Time) { c.ms.Store(t.UnixMilli()) }

// Advance moves the clock on by d (to the millisecond) and returns the new
// time.
func (c *ManualClock) Advance(d time.Duration) time.Time {
	return time.UnixMilli(c.ms.Add(d.Milliseconds()))
}

// LogLine is a log line a LogBuffer kept.
type LogLine struct {
	Level   LogLevel
	Message string
}

// LogBufferLines is how many lines a LogBuffer keeps: the last ones.
const LogBufferLines = 256

// LogBuffer keeps the last LogBufferLines lines given to its Log method, for
// Take: what the Lua binding's log = "buffer" with eng:logs() and Python's
// log="buffer" with eng.logs() give, for a loop that reads the engine's lines
// when it likes rather than inside the engine's calls. Its zero value is
// ready; give its Log method as Config.Log. It is safe for concurrent use.
//
//	var logs switchboard.LogBuffer
//	eng, err := switchboard.Open(switchboard.Config{DataDir: dir, Log: logs.Log})
//	...
//	for _, l := range logs.Take() {
//		fmt.Println(l.Level, l.Message)
//	}
type LogBuffer struct {
	mu    sync.Mutex
	lines []LogLine // a ring once full: the oldest at first
	first int
}

// Log keeps one line, the oldest kept making room when LogBufferLines are.
func (b *LogBuffer) Log(level LogLevel, line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.lines) < LogBufferLines {
		b.lines = append(b.lines, LogLine{level, line})
		return
	}
	b.lines[b.first] = LogLine{level, line}
	b.first = (b.first + 1) % LogBufferLines
}

// Take returns the lines kept since the last Take, oldest first, and
// forgets them.
func (b *LogBuffer) Take() []LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]LogLine, 0, len(b.lines))
	out = append(out, b.lines[b.first:]...)
	out = append(out, b.lines[:b.first]...)
	b.lines, b.first = nil, 0
	return out
}

// Config holds the settings of Open, mirroring sb_config. The zero value of
// every field but DataDir means the library's default; a negative budget
// switches that budget off.
type Config struct {
	DataDir   string   // created (mode 0700) if missing; required
	PolicyDir string   // shared/stock policies (*.lua); "" for none
	KeyFile   string   // master key; "": <DataDir>/master.key
	Sync      SyncMode // zero: SyncGroup
	MapSize   uint64   // initial LMDB map size in bytes; zero: 64 MiB (it grows)
	MapMax    uint64   // never grow the map past this; zero: 64 GiB

	// Clock is the engine's clock for events and timers (tests, simulations);
	// nil: the system clock. It is called from inside the engine's calls,
	// must be safe for concurrent use, must not block nor call the engine;
	// a panic (of any value, nil too) falls back to the system time, and so
	// does a time before 1970 (the zero time.Time) or past what int64
	// milliseconds hold. Each such reading is said through Log, as a LogError
	// line naming the panic or the time (numbers read [number]), as the
	// Python and Lua bindings say it; without a Log, once on stderr. runtime.Goexit in it — t.Fatal, t.FailNow, t.SkipNow — cannot be
	// stopped and would leave the engine inside its transaction for good: it
	// ends the process (status 2) with a message naming the function.
	Clock func() time.Time
	// Log receives each log line (no trailing newline); nil: stderr. It is
	// called from inside the engine's calls and must not call the engine; a
	// panic drops the line; runtime.Goexit ends the process, as in Clock.
	Log      func(level LogLevel, line string)
	LogLevel LogLevel // zero: LogInfo
	Seed     uint64   // seeds ctx.random (with the call id and attempt)

	// Budgets of every policy hook call: zero takes the default (1,000,000
	// instructions, 50 ms, 8 MiB per account, quarantine after 5 failures in
	// a row); negative switches the budget off. A QuarantineAfter past what
	// the C field holds (2^32-1) is 2^32-1.
	PolicyInstructions int64
	PolicyWallTime     time.Duration
	PolicyMemory       int64
	QuarantineAfter    int

	// Only load policies carrying a valid Ed25519 signature made with the
	// secret key of PolicyPublicKey (64 hex characters).
	RequireSignedPolicies bool
	PolicyPublicKey       string

	// Days after an erasure request came that the erasure journal keeps its
	// number's pseudonym, once applied: zero keeps it for good (the
	// library's default); past 36600, or negative, Open fails with
	// ErrInvalid naming erasure_journal_days.
	ErasureJournalDays int
}

// ---------------------------------------------------------------------------
// C strings

// cstrings copies the values of name, value pairs into one C allocation,
// NUL-terminating each, and returns the C strings in order. Free the block
// with C.free(block). A value with a NUL byte is refused (ErrInvalid naming
// it): C would read it as a shorter string.
func cstrings(pairs ...string) ([]*C.char, unsafe.Pointer, error) {
	n := 0
	for i := 1; i < len(pairs); i += 2 {
		if strings.IndexByte(pairs[i], 0) >= 0 {
			return nil, nil, &Error{Code: ErrInvalid, Field: pairs[i-1],
				Message: pairs[i-1] + " holds a NUL byte (a C string would end there)"}
		}
		n += len(pairs[i]) + 1
	}
	if n == 0 {
		return nil, nil, nil
	}
	block := C.malloc(C.size_t(n))
	if block == nil {
		return nil, nil, &Error{Code: ErrNoMemory, Message: "out of memory"}
	}
	buf := unsafe.Slice((*byte)(block), n)
	out := make([]*C.char, len(pairs)/2)
	off := 0
	for i := range out {
		v := pairs[2*i+1]
		copy(buf[off:], v)
		buf[off+len(v)] = 0
		out[i] = (*C.char)(unsafe.Pointer(&buf[off]))
		off += len(v) + 1
	}
	return out, block, nil
}

// document turns a document argument into JSON bytes.
func document(doc any) ([]byte, error) {
	switch d := doc.(type) {
	case nil:
		return nil, nil
	case []byte:
		return d, nil
	case json.RawMessage:
		return d, nil
	case string:
		return []byte(d), nil
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, &Error{Code: ErrInvalid, Message: "cannot encode the document: " + err.Error()}
	}
	if err := checkStrings("", doc, b); err != nil {
		return nil, err
	}
	return b, nil
}

var (
	jsonMarshaler = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
	textMarshaler = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
)

// checkStrings refuses v, a value json.Marshal took as b, when a string in
// it (a value or an object's name) holds a NUL byte or is not valid UTF-8.
// json.Marshal writes a NUL byte as \u0000, which the engine refuses naming
// no field ("strings may not contain \u0000 (line 1 column 29)", of JSON
// text the caller never wrote; in attrs, "'attrs' must be a JSON object"),
// and each byte that is not UTF-8 as U+FFFD, a character the engine would
// store where JSON text holding the bytes is refused. The error names where,
// as Lua's does: path (the field, "" for the document), path.name or
// path[i]; path itself for a name, or for a NUL byte only a value's own
// MarshalJSON wrote. Documents and events share it.
func checkStrings(path string, v any, b []byte) error {
	at, nul, ok := badString(path, reflect.ValueOf(v))
	if !ok && jsonHasNUL(b) {
		at, nul, ok = path, true, true
	}
	if !ok {
		return nil
	}
	field := strings.TrimPrefix(at, ".")
	what := field
	if what == "" {
		what = "the document"
	}
	if nul {
		return &Error{Code: ErrInvalid, Field: field,
			Message: what + " holds a NUL byte (a C string would end there)"}
	}
	return &Error{Code: ErrInvalid, Field: field, Message: what + " is not valid UTF-8"}
}

// badString finds the first string in v that checkStrings refuses: where,
// and whether for a NUL byte (else for UTF-8).
func badString(path string, v reflect.Value) (string, bool, bool) {
	if !v.IsValid() {
		return "", false, false
	}
	if v.Kind() != reflect.Interface && v.Kind() != reflect.Pointer &&
		(v.Type().Implements(jsonMarshaler) || v.Type().Implements(textMarshaler)) {
		return "", false, false // its own encoding: what it writes is its to answer for
	}
	switch v.Kind() {
	case reflect.String:
		if strings.IndexByte(v.String(), 0) >= 0 {
			return path, true, true
		}
		if !utf8.ValidString(v.String()) {
			return path, false, true
		}
	case reflect.Interface, reflect.Pointer:
		if !v.IsNil() {
			return badString(path, v.Elem())
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			name := fmt.Sprint(k)
			if k.Kind() == reflect.String {
				if _, nul, bad := badString(path, k); bad {
					return path, nul, true
				}
			}
			if at, nul, ok := badString(path+"."+name, v.MapIndex(k)); ok {
				return at, nul, true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", false, false // base64
		}
		for i := 0; i < v.Len(); i++ {
			if at, nul, ok := badString(fmt.Sprintf("%s[%d]", path, i), v.Index(i)); ok {
				return at, nul, true
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			sub := path + "." + name
			if f.Anonymous {
				sub = path
			}
			if at, nul, ok := badString(sub, v.Field(i)); ok {
				return at, nul, true
			}
		}
	}
	return "", false, false
}

// jsonHasNUL reports whether the JSON text b holds a NUL byte, escaped:
// \u0000 (encoding/json writes it so, and not escaped at all it would end the
// C string before the text does).
func jsonHasNUL(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case 0:
			return true
		case '\\':
			if i+5 < len(b) && string(b[i+1:i+6]) == "u0000" {
				return true
			}
			i++ // the escaped character, a backslash perhaps
		}
	}
	return false
}

// bytesPtr points C at b (which holds no Go pointers, as cgo requires).
func bytesPtr(b []byte) (*C.char, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// ---------------------------------------------------------------------------
// The engine

// Engine is an open engine on a data directory. Its methods may be called
// from many goroutines at once; Close waits for the calls in flight. An
// Engine the program drops without closing it is closed when the garbage
// collector finds it unreachable (a finalizer), as Python's and Lua's are:
// its files, memory and callbacks are not held for the life of the process.
type Engine struct {
	mu      sync.Mutex
	idle    sync.Cond // on mu: the last call in flight returned, or Close ended
	eng     *C.sb_engine
	calls   int               // calls in flight
	closing bool              // Close waits for the calls in flight; new calls are refused
	pool    chan *C.sb_result // idle results, at most poolSize
	poolMu  sync.Mutex
	all     map[*C.sb_result]struct{} // every result not freed: idle or in use; on poolMu
	clock   cgo.Handle
	log     cgo.Handle
	// The open Batch, on mu: its thread (sbgo_thread) and how many Batch
	// calls of that thread are in it (0: none open).
	batchThread C.uintptr_t
	batchDepth  int
	batchMu     sync.Mutex // held by the goroutine whose Batch is open: others wait
	// The open TrackChanges, on mu: each one's thread (sbgo_thread) and the
	// flag its calls set; tracking counts them, so that calls made with none
	// open do not take mu to look.
	trackers map[C.uintptr_t]*bool
	tracking atomic.Int32
}

// Open opens (creating if needed) the engine on cfg.DataDir.
func Open(cfg Config) (*Engine, error) {
	var c C.sb_config
	C.sb_config_init(&c)
	if c.version != C.SB_CONFIG_VERSION {
		return nil, &Error{Code: ErrVersion, Message: "library config version differs from the header's"}
	}
	strs, block, err := cstrings("data_dir", cfg.DataDir, "policy_dir", cfg.PolicyDir, "key_file", cfg.KeyFile,
		"policy_public_key", cfg.PolicyPublicKey)
	if err != nil {
		return nil, err
	}
	defer C.free(block)
	c.data_dir = strs[0]
	if cfg.PolicyDir != "" {
		c.policy_dir = strs[1]
	}
	if cfg.KeyFile != "" {
		c.key_file = strs[2]
	}
	if cfg.PolicyPublicKey != "" {
		c.policy_public_key = strs[3]
	}
	if cfg.RequireSignedPolicies {
		c.require_signed_policies = 1
	}
	c.sync = C.sb_sync_mode(cfg.Sync)
	if cfg.MapSize != 0 {
		c.map_size = C.size_t(cfg.MapSize)
	}
	if cfg.MapMax != 0 {
		c.map_max = C.size_t(cfg.MapMax)
	}
	if err := setLogLevel(&c, cfg.LogLevel); err != nil {
		return nil, err
	}
	if cfg.ErasureJournalDays < 0 {
		// The C field has no sign: said here, in the engine's words.
		return nil, &Error{Code: ErrInvalid, Field: "erasure_journal_days",
			Message: fmt.Sprintf("erasure_journal_days must be 0 (kept for good) to 36600, not %d",
				cfg.ErasureJournalDays)}
	}
	c.seed = C.uint64_t(cfg.Seed)
	setBudgets(&c, &cfg)
	e := &Engine{pool: make(chan *C.sb_result, poolSize), all: map[*C.sb_result]struct{}{}}
	e.idle.L = &e.mu
	if cfg.Clock != nil {
		e.clock = cgo.NewHandle(&engineClock{clock: cfg.Clock, log: cfg.Log})
		C.sbgo_set_clock(&c, C.uintptr_t(e.clock))
	}
	if cfg.Log != nil {
		e.log = cgo.NewHandle(cfg.Log)
		C.sbgo_set_log(&c, C.uintptr_t(e.log))
	}
	res := C.sb_result_new()
	if res == nil {
		e.freeHandles()
		return nil, &Error{Code: ErrNoMemory, Message: "out of memory"}
	}
	e.all[res] = struct{}{}
	if rc := C.sb_open(&e.eng, &c, res); rc != 0 {
		err := resultError(rc, res)
		delete(e.all, res)
		C.sb_result_free(res)
		e.freeHandles()
		return nil, err
	}
	e.pool <- res
	// Dropped without Close: closed on the finalizer goroutine. No call is in
	// flight then (each method holds e until its call has left).
	runtime.SetFinalizer(e, (*Engine).Close)
	return e, nil
}

// setLogLevel puts level into c (Open, MasterKeyRotate): zero keeps the
// default, one out of range is ErrInvalid naming log_level.
func setLogLevel(c *C.sb_config, level LogLevel) error {
	if level < 0 || level > LogDebug {
		// Named in Go's terms: C's message counts from SB_LOG_ERROR = 0.
		return &Error{Code: ErrInvalid, Field: "log_level",
			Message: fmt.Sprintf("unknown log level %d (LogError %d to LogDebug %d; 0: LogInfo)",
				int(level), int(LogError), int(LogDebug))}
	}
	if level != 0 {
		c.log_level = C.sb_log_level(level - 1)
	}
	return nil
}

// setBudgets puts cfg's policy budgets into c, as Config says them: zero
// keeps the default c holds (sb_config_init), negative switches one off.
func setBudgets(c *C.sb_config, cfg *Config) {
	switch {
	case cfg.PolicyInstructions > 0:
		c.policy_instructions = C.uint64_t(cfg.PolicyInstructions)
	case cfg.PolicyInstructions < 0:
		c.policy_instructions = 0
	}
	switch {
	case cfg.PolicyWallTime > 0:
		ms := cfg.PolicyWallTime.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		if ms > math.MaxUint32 {
			ms = math.MaxUint32
		}
		c.policy_wall_ms = C.uint32_t(ms)
	case cfg.PolicyWallTime < 0:
		c.policy_wall_ms = 0
	}
	switch {
	case cfg.PolicyMemory > 0:
		c.policy_memory = C.size_t(cfg.PolicyMemory)
	case cfg.PolicyMemory < 0:
		c.policy_memory = 0
	}
	switch {
	case int64(cfg.QuarantineAfter) > math.MaxUint32:
		// sb_config.quarantine_after is 32 bits: the largest it holds, not
		// the low bits (2^32+1 would quarantine at the first failure).
		c.quarantine_after = C.uint32_t(math.MaxUint32)
	case cfg.QuarantineAfter > 0:
		c.quarantine_after = C.uint32_t(cfg.QuarantineAfter)
	case cfg.QuarantineAfter < 0:
		c.quarantine_after = 0
	}
	if int64(cfg.ErasureJournalDays) > math.MaxUint32 {
		// Out of the engine's range, whose refusal names the field.
		c.erasure_journal_days = C.uint32_t(math.MaxUint32)
	} else {
		c.erasure_journal_days = C.uint32_t(cfg.ErasureJournalDays)
	}
}

func (e *Engine) freeHandles() {
	if e.clock != 0 {
		e.clock.Delete()
		e.clock = 0
	}
	if e.log != 0 {
		e.log.Delete()
		e.log = 0
	}
}

// Close syncs and closes the engine once the calls in flight on other
// goroutines (a Sweep included) have returned; calls made meanwhile fail at
// once with ErrInvalid ("the engine is closing"), and calls after Close with
// ErrInvalid ("the engine is closed"). Closing twice is harmless. Called from
// inside a call on an engine — from a Clock, Log or Sweep progress function —
// Close returns an ErrState error and closes nothing: the call that called
// it still uses the engine, and waiting for it would never end. An open Batch
// counts as a call in flight; Close inside its function is ErrState too.
func (e *Engine) Close() error {
	if e == nil { // sb_close(NULL): nothing to close
		return nil
	}
	if C.sbgo_in_callback() != 0 {
		return &Error{Code: ErrState, Message: "Close called from a Clock, Log or Sweep progress " +
			"function: the engine is inside a call; close it after that call returns"}
	}
	self := C.sbgo_thread()
	e.mu.Lock()
	if e.eng == nil {
		e.mu.Unlock()
		return nil
	}
	if e.batchDepth > 0 && e.batchThread == self {
		// Only the Batch's goroutine runs on its (locked) thread.
		e.mu.Unlock()
		return &Error{Code: ErrState, Message: "Close called inside a Batch function: the batch " +
			"is still open; close the engine after Batch returns"}
	}
	if e.closing { // another goroutine closes it: wait for that
		for e.eng != nil {
			e.idle.Wait()
		}
		e.mu.Unlock()
		return nil
	}
	e.closing = true
	for e.calls > 0 {
		e.idle.Wait()
	}
	eng := e.eng
	e.mu.Unlock()
	// Outside the lock: sb_close may log, and Log may call the engine (it is
	// refused: closing).
	C.sb_close(eng)
	e.mu.Lock()
	e.eng = nil
	e.closing = false
	// Every call has returned: the results are all idle. Free them all the
	// same, from e.all, not the pool alone.
	e.poolMu.Lock()
	for r := range e.all {
		C.sb_result_free(r)
	}
	e.all = nil
	e.poolMu.Unlock()
	e.pool = nil
	e.freeHandles()
	e.idle.Broadcast()
	e.mu.Unlock()
	return nil
}

// Closed reports whether Close has closed the engine (Python's
// Engine.closed, Lua's eng:closed()): then every method fails with ErrInvalid
// ("the engine is closed"), NextDeadline reports no timer and APIKeyVerify
// false. It is false while a Close waits for the calls in flight, and may be
// asked from a Clock, Log or Sweep progress function. A nil *Engine is closed.
func (e *Engine) Closed() bool {
	if e == nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.eng == nil
}

// enter starts one call on the engine; leave ends it.
func (e *Engine) enter() (*C.sb_engine, error) {
	if e == nil { // a nil *Engine (an Open that failed) is closed, as a nil *os.File is
		return nil, errClosed
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.eng == nil {
		return nil, errClosed
	}
	if e.closing {
		return nil, errClosing
	}
	e.calls++
	return e.eng, nil
}

func (e *Engine) leave() {
	e.mu.Lock()
	e.calls--
	if e.calls == 0 && e.closing {
		e.idle.Broadcast()
	}
	e.mu.Unlock()
}

// poolSize is how many idle results an engine keeps for its calls. More calls
// in flight at once each make a result of their own, freed as they end.
const poolSize = 64

// begin starts a call and takes a result to use; end gives it back and ends
// the call.
func (e *Engine) begin() (*C.sb_result, error) {
	if _, err := e.enter(); err != nil {
		return nil, err
	}
	r := e.take()
	if r == nil {
		e.leave()
		return nil, &Error{Code: ErrNoMemory, Message: "out of memory"}
	}
	return r, nil
}

// take gives a call in flight a result: an idle one, or a new one (nil when
// out of memory).
func (e *Engine) take() *C.sb_result {
	select {
	case r := <-e.pool:
		return r
	default:
	}
	r := C.sb_result_new()
	if r == nil {
		return nil
	}
	e.poolMu.Lock()
	e.all[r] = struct{}{}
	e.poolMu.Unlock()
	return r
}

// end gives r back: to the pool, or, when the pool is full, it frees r at
// once — a result holds its last answer (a list of 1,000 agents...), and
// keeping every one made in a burst of calls until Close grows without limit.
// Freeing is safe: the caller is done with r (everything the method returns
// was copied out of it before its deferred end runs), and r is nowhere else,
// not being in the pool. It leaves e.all first, so that a Close (which waits
// for this call's leave anyway) never sees it.
func (e *Engine) end(r *C.sb_result) {
	e.giveBack(r)
	e.leave()
}

// giveBack is end without leave.
func (e *Engine) giveBack(r *C.sb_result) {
	select {
	case e.pool <- r:
	default:
		e.poolMu.Lock()
		delete(e.all, r)
		e.poolMu.Unlock()
		C.sb_result_free(r)
	}
}

// resultDoc decodes the result's JSON document.
func resultDoc(res *C.sb_result) (map[string]any, error) {
	var m map[string]any
	if err := resultInto(res, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// resultInto decodes the result's JSON document into v.
func resultInto(res *C.sb_result, v any) error {
	var n C.size_t
	p := C.sb_result_json(res, &n)
	if err := json.Unmarshal(C.GoBytes(unsafe.Pointer(p), C.int(n)), v); err != nil {
		return &Error{Code: ErrStore, Message: "unreadable result document: " + err.Error()}
	}
	return nil
}

// call runs fn with a result and strings ss as C strings, and returns the
// result's document. The actions the call caused (a put that let a waiting
// call ring) are its "actions" entry, typed: []Action as Submit returns them,
// which json.Marshal renders in the engine's shape; without any there is no
// "actions" entry (the engine's JSON has an empty one for a document-less
// answer).
func (e *Engine) call(ss []string, fn func(res *C.sb_result, s []*C.char) C.int) (map[string]any, error) {
	var m map[string]any
	var acts []Action
	err := e.callInto(ss, &m, func(res *C.sb_result, s []*C.char) C.int {
		rc := fn(res, s)
		if rc == 0 {
			acts = resultActions(res)
		}
		return rc
	})
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	if len(acts) > 0 {
		m["actions"] = acts
	} else if a, ok := m["actions"].([]any); ok && len(a) == 0 {
		delete(m, "actions")
	}
	return m, nil
}

// callInto is call decoding the result's document into v. The document is
// the result's, valid until its next use: it is copied into v before the
// result goes back to the pool.
func (e *Engine) callInto(ss []string, v any, fn func(res *C.sb_result, s []*C.char) C.int) error {
	res, err := e.begin()
	if err != nil {
		return err
	}
	defer e.end(res)
	s, block, err := cstrings(ss...)
	if err != nil {
		return err
	}
	defer C.free(block)
	rc := fn(res, s)
	e.noteChanged(res)
	if rc != 0 {
		return resultError(rc, res)
	}
	return resultInto(res, v)
}

func list(m map[string]any, key string, err error) ([]map[string]any, error) {
	if err != nil {
		return nil, err
	}
	raw, _ := m[key].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, x := range raw {
		if o, ok := x.(map[string]any); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Accounts, agents, queues, memberships

// AccountPut creates or replaces an account, e.g.
// {"id":"acme","name":"Acme Ltd","fallback":"longest_idle"}. It returns the
// stored account with "created".
func (e *Engine) AccountPut(doc any) (map[string]any, error) {
	b, err := document(doc)
	if err != nil {
		return nil, err
	}
	return e.call(nil, func(res *C.sb_result, _ []*C.char) C.int {
		p, n := bytesPtr(b)
		return C.sb_account_put(e.eng, p, n, res)
	})
}

// AccountGet reads an account.
func (e *Engine) AccountGet(account string) (map[string]any, error) {
	return e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_account_get(e.eng, s[0], res)
	})
}

// AccountList lists every account.
func (e *Engine) AccountList() ([]map[string]any, error) {
	m, err := e.call(nil, func(res *C.sb_result, _ []*C.char) C.int {
		return C.sb_account_list(e.eng, res)
	})
	return list(m, "accounts", err)
}

// AccountDelete deletes an account and everything it owns: its data key at
// once, its records, aggregates and audit log by sweeps. ErrState while the
// account has live calls (waiting, ringing or connected: end them, or use
// AccountEvict); ErrHold while it has legal holds.
func (e *Engine) AccountDelete(account string) error {
	_, err := e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_account_delete(e.eng, s[0], res)
	})
	return err
}

// AccountEvict deletes an account with its live calls (sb_account_evict),
// for an operator removing a tenant whose calls would hold it, where
// AccountDelete refuses with ErrState. It returns an ActionEnd for each live
// call (Reason "account deleted", the call's Queue) for the gateway that
// had it; the calls leave no record (the account's records go anyway).
// ErrHold while the account has legal holds, as AccountDelete.
func (e *Engine) AccountEvict(account string) ([]Action, error) {
	m, err := e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_account_evict(e.eng, s[0], res)
	})
	if err != nil {
		return nil, err
	}
	acts, _ := m["actions"].([]Action)
	return acts, nil
}

// AgentPut creates or replaces an agent (see switchboard.h for the document).
// Replacing keeps live state. The answer has "id", "created" and "status",
// and, when the change let a waiting call ring (the agent made available),
// "actions": the []Action for the gateway to carry out, as Submit returns
// them — actions, _ := doc["actions"].([]switchboard.Action).
func (e *Engine) AgentPut(account string, doc any) (map[string]any, error) {
	b, err := document(doc)
	if err != nil {
		return nil, err
	}
	return e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		p, n := bytesPtr(b)
		return C.sb_agent_put(e.eng, s[0], p, n, res)
	})
}

// AgentGet reads an agent's document with its live state ("status", "stats", and
// "next_status" and "next_reason" while a status asked for on a call waits for its end).
func (e *Engine) AgentGet(account, agent string) (map[string]any, error) {
	return e.call([]string{"account", account, "agent", agent}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_agent_get(e.eng, s[0], s[1], res)
	})
}

// PolicyGet reads the policy of that name the account runs, with its source
// ("name", "version", "source": "account" or "shared", "shadows_shared", "code").
func (e *Engine) PolicyGet(account, name string) (map[string]any, error) {
	return e.call([]string{"account", account, "name", name}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_policy_get(e.eng, s[0], s[1], res)
	})
}

// PolicyDelete deletes the account's upload of that name; a shared policy of
// the same name decides from then on. ErrState while a queue or the account's
// retention setting needs it and no shared one stands in.
func (e *Engine) PolicyDelete(account, name string) (map[string]any, error) {
	return e.call([]string{"account", account, "name", name}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_policy_delete(e.eng, s[0], s[1], res)
	})
}

// PolicyDeleteIf is PolicyDelete only when the account's upload has the
// version ifVersion ("*": any upload); else ErrState with field
// "if_version", and nothing changed (sb_policy_delete_if).
func (e *Engine) PolicyDeleteIf(account, name, ifVersion string) (map[string]any, error) {
	return e.call([]string{"account", account, "name", name, "if_version", ifVersion}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_policy_delete_if(e.eng, s[0], s[1], s[2], res)
	})
}

// PolicyVersions reads the account's history of policy name, newest first
// ("name", "versions": [{"seq", "change": "upload" or "delete", "version",
// "previous", "at_ms", "bytes", "current"}...], and "next" while more follow):
// the entries below seq before (0: from the newest), at most limit (0: 50);
// pass "next" as before for the following page (sb_policy_versions). A
// negative limit is ErrInvalid (field "limit").
func (e *Engine) PolicyVersions(account, name string, before uint64, limit int) (map[string]any, error) {
	if limit < 0 {
		return nil, &Error{Code: ErrInvalid, Field: "limit",
			Message: fmt.Sprintf("limit must be 0 (50) or more, not %d", limit)}
	}
	return e.call([]string{"account", account, "name", name}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_policy_versions(e.eng, s[0], s[1], C.uint64_t(before), C.size_t(limit), res)
	})
}

// PolicyVersion reads one version of the account's policy name from its
// history, with its "code": roll back by uploading that code again
// (sb_policy_version_get).
func (e *Engine) PolicyVersion(account, name, version string) (map[string]any, error) {
	return e.call([]string{"account", account, "name", name, "version", version}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_policy_version_get(e.eng, s[0], s[1], s[2], res)
	})
}

// PolicyVersionsForget drops the earlier uploads of version from the
// history of policy name ("": every entry but the newest); ErrState for the
// version in use (sb_policy_versions_forget).
func (e *Engine) PolicyVersionsForget(account, name, version string) (map[string]any, error) {
	return e.call([]string{"account", account, "name", name, "version", version}, func(res *C.sb_result, s []*C.char) C.int {
		v := s[2]
		if version == "" {
			v = nil
		}
		return C.sb_policy_versions_forget(e.eng, s[0], s[1], v, res)
	})
}

// AgentList lists an account's agents, in id order (AgentListPage reads
// them a page at a time).
func (e *Engine) AgentList(account string) ([]map[string]any, error) {
	m, err := e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_agent_list(e.eng, s[0], res)
	})
	return list(m, "agents", err)
}

// page reads one page of a list (sb_agent_list_page...): the items under
// key, and next, the last id given while more follow ("" on the last page).
// A negative limit is ErrInvalid (field "limit").
func (e *Engine) page(key string, limit int, ss []string, fn func(res *C.sb_result, s []*C.char, limit C.size_t) C.int) ([]map[string]any, string, error) {
	if limit < 0 {
		return nil, "", &Error{Code: ErrInvalid, Field: "limit",
			Message: fmt.Sprintf("limit must be 0 (all) or more, not %d", limit)}
	}
	m, err := e.call(ss, func(res *C.sb_result, s []*C.char) C.int {
		return fn(res, s, C.size_t(limit))
	})
	items, err := list(m, key, err)
	if err != nil {
		return nil, "", err
	}
	next, _ := m["next"].(string)
	return items, next, nil
}

// AgentListPage reads a page of the account's agents, in id order: those
// whose ids come after after ("": from the first), limit at most (0: all),
// and next, the last id given, while more follow ("" on the last page): the
// next page's after. An after that is no id is ErrInvalid (Field "after"),
// as is a negative limit (Field "limit").
//
//	for after := ""; ; {
//		agents, next, err := eng.AgentListPage("acme", after, 500)
//		if err != nil { ... }
//		... // agents
//		if next == "" { break }
//		after = next
//	}
func (e *Engine) AgentListPage(account, after string, limit int) (agents []map[string]any, next string, err error) {
	return e.page("agents", limit, []string{"account", account, "after", after},
		func(res *C.sb_result, s []*C.char, n C.size_t) C.int {
			return C.sb_agent_list_page(e.eng, s[0], s[1], n, res)
		})
}

// Pages walks a list a page at a time (AgentPages, QueuePages, CallPages,
// RecordsPages, AuditPages), as Python's agent_pages and Lua's
// eng:agent_pages do, in the way of bufio.Scanner: Next reads the next page,
// Page gives it, and Err the error that ended the walk (nil once the last
// page was given).
//
//	pages := eng.AgentPages("acme", 500)
//	for pages.Next() {
//		for _, agent := range pages.Page() { ... }
//	}
//	if err := pages.Err(); err != nil { ... }
//
// Each page is its own read, not a snapshot of the whole list: an item made
// or deleted meanwhile is listed or not as it falls before or after the
// cursor, and none is given twice. Only the first page may be empty (a list
// with nothing in it). A Pages is for one goroutine.
type Pages[T any] struct {
	read  func() (page []T, last bool, err error) // the cursor in its closure
	page  []T
	err   error
	first bool // a page was read
	done  bool
}

// Next reads the next page: false once the last page was given, or when
// reading one failed (Err says why; Page is nil then).
func (p *Pages[T]) Next() bool {
	p.page = nil
	if p.done || p.read == nil { // a Pages not made by the engine reads nothing
		return false
	}
	page, last, err := p.read()
	if err != nil {
		p.err, p.done = err, true
		return false
	}
	p.done = last
	if len(page) == 0 && p.first {
		// The page after a full last one, of a list whose end is known only
		// by reading past it (records, the audit log).
		p.done = true
		return false
	}
	p.page, p.first = page, true
	return true
}

// Page is the page the last Next read.
func (p *Pages[T]) Page() []T { return p.page }

// Err is the error that ended the walk, nil when it reached the last page.
func (p *Pages[T]) Err() error { return p.err }

// idPages walks a list whose pages give the next page's cursor.
func idPages(read func(after string) ([]map[string]any, string, error)) *Pages[map[string]any] {
	after := ""
	return &Pages[map[string]any]{read: func() ([]map[string]any, bool, error) {
		page, next, err := read(after)
		after = next
		return page, next == "", err
	}}
}

// AgentPages walks the account's agents a page of limit at a time (0: the
// whole list in one page), in id order: AgentListPage page after page. The
// refusals of AgentListPage (an account that does not exist, a negative
// limit) are Err after the first Next.
func (e *Engine) AgentPages(account string, limit int) *Pages[map[string]any] {
	return idPages(func(after string) ([]map[string]any, string, error) {
		return e.AgentListPage(account, after, limit)
	})
}

// QueuePages walks the account's queues a page at a time, as AgentPages.
func (e *Engine) QueuePages(account string, limit int) *Pages[map[string]any] {
	return idPages(func(after string) ([]map[string]any, string, error) {
		return e.QueueListPage(account, after, limit)
	})
}

// CallPages walks the account's live calls, all or those in queue ("": all),
// a page at a time, as AgentPages.
func (e *Engine) CallPages(account, queue string, limit int) *Pages[map[string]any] {
	return idPages(func(after string) ([]map[string]any, string, error) {
		return e.CallListPage(account, queue, after, limit)
	})
}

// AgentDelete deletes an agent; ErrState while it is ringing or on a call.
// It causes no actions (a ring it was part of cannot be going on).
func (e *Engine) AgentDelete(account, agent string) error {
	_, err := e.call([]string{"account", account, "agent", agent}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_agent_delete(e.eng, s[0], s[1], res)
	})
	return err
}

// QueuePut creates or replaces a queue (see switchboard.h for the document).
// The answer has "id" and "created", and, when the change let a waiting call
// ring (a free agent added), "actions": the []Action for the gateway to carry
// out, as Submit returns them.
func (e *Engine) QueuePut(account string, doc any) (map[string]any, error) {
	b, err := document(doc)
	if err != nil {
		return nil, err
	}
	return e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		p, n := bytesPtr(b)
		return C.sb_queue_put(e.eng, s[0], p, n, res)
	})
}

// QueueGet reads a queue with its members and live figures.
func (e *Engine) QueueGet(account, queue string) (map[string]any, error) {
	return e.call([]string{"account", account, "queue", queue}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_queue_get(e.eng, s[0], s[1], res)
	})
}

// QueueList lists an account's queues, in id order, each with its
// "waiting" count (QueueListPage reads them a page at a time).
func (e *Engine) QueueList(account string) ([]map[string]any, error) {
	m, err := e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_queue_list(e.eng, s[0], res)
	})
	return list(m, "queues", err)
}

// QueueListPage reads a page of the account's queues, as AgentListPage.
func (e *Engine) QueueListPage(account, after string, limit int) (queues []map[string]any, next string, err error) {
	return e.page("queues", limit, []string{"account", account, "after", after},
		func(res *C.sb_result, s []*C.char, n C.size_t) C.int {
			return C.sb_queue_list_page(e.eng, s[0], s[1], n, res)
		})
}

// QueueDelete deletes a queue; ErrState while a call is in it (waiting,
// ringing or connected), or while another queue overflows into it. It causes
// no actions.
func (e *Engine) QueueDelete(account, queue string) error {
	_, err := e.call([]string{"account", account, "queue", queue}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_queue_delete(e.eng, s[0], s[1], res)
	})
	return err
}

// MemberPut adds or replaces one membership, e.g.
// {"tier":1,"position":2,"weight":1,"penalty":0}; nil takes the defaults.
// The answer is empty, or, when the change let a waiting call ring (a free
// agent added), has "actions": the []Action for the gateway to carry out, as
// Submit returns them.
func (e *Engine) MemberPut(account, queue, agent string, membership any) (map[string]any, error) {
	b, err := document(membership)
	if err != nil {
		return nil, err
	}
	return e.call([]string{"account", account, "queue", queue, "agent", agent}, func(res *C.sb_result, s []*C.char) C.int {
		p, n := bytesPtr(b)
		return C.sb_member_put(e.eng, s[0], s[1], s[2], p, n, res)
	})
}

// MemberDelete removes an agent from a queue. It causes no actions: a ring
// of the agent for a call of the queue goes on (the call's next event ends it).
func (e *Engine) MemberDelete(account, queue, agent string) error {
	_, err := e.call([]string{"account", account, "queue", queue, "agent", agent}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_member_delete(e.eng, s[0], s[1], s[2], res)
	})
	return err
}

// ---------------------------------------------------------------------------
// Events and actions

// EventType is the kind of an Event.
type EventType int

const (
	Offer       EventType = C.SB_EV_OFFER        // a call arrives in Queue
	RingResult  EventType = C.SB_EV_RING_RESULT  // Agent's ring for Call ended with Outcome
	Hangup      EventType = C.SB_EV_HANGUP       // a connected call ended
	Abandon     EventType = C.SB_EV_ABANDON      // the caller hung up before being connected
	Transfer    EventType = C.SB_EV_TRANSFER     // move Call to Queue, or ring Agent directly
	AgentStatus EventType = C.SB_EV_AGENT_STATUS // Agent becomes Status (with Reason)
)

// RingOutcome is how a ring ended.
type RingOutcome int

const (
	Answered RingOutcome = C.SB_RING_ANSWERED
	NoAnswer RingOutcome = C.SB_RING_NO_ANSWER
	Busy     RingOutcome = C.SB_RING_BUSY
	Rejected RingOutcome = C.SB_RING_REJECTED
)

// EndParty is who ended a call (sb_end_party), said by a Hangup or an
// Abandon in Event.By. The zero value is not said.
type EndParty int

const (
	ByCaller EndParty = C.SB_END_CALLER
	ByAgent  EndParty = C.SB_END_AGENT  // only of a connected call's Hangup
	BySystem EndParty = C.SB_END_SYSTEM // the gateway or the network: a call never answered is "failed"
)

// Status is an agent's status. Gateways set Offline, Available and Paused;
// the engine sets the others. The zero value is no status: an AgentStatus
// event without one is refused (ErrInvalid naming "status"), where it would
// have taken the agent offline (C's SB_AGENT_OFFLINE is 0).
type Status int

const (
	Offline   Status = C.SB_AGENT_OFFLINE + 1
	Available Status = C.SB_AGENT_AVAILABLE + 1
	Paused    Status = C.SB_AGENT_PAUSED + 1
	Reserved  Status = C.SB_AGENT_RESERVED + 1 // ringing for a call
	OnCall    Status = C.SB_AGENT_ON_CALL + 1
	WrapUp    Status = C.SB_AGENT_WRAP_UP + 1
)

// Event is one call or agent event (sb_event).
type Event struct {
	Type     EventType
	Call     string         // every event but AgentStatus
	Queue    string         // Offer; Transfer to a queue
	Agent    string         // RingResult, AgentStatus; Transfer to an agent
	Caller   string         // Offer: E.164 caller number; "" for a withheld number
	Called   string         // Offer: E.164 number dialled (optional)
	Priority int            // Offer: 0..100, higher first
	Outcome  RingOutcome    // RingResult
	Status   Status         // AgentStatus: Offline, Available or Paused
	Reason   string         // AgentStatus: pause reason (optional)
	Attrs    map[string]any // Offer: gateway attributes, e.g. {"language":"de"}
	// RingResult, optional (0: not given): the Attempt of the ring Action it
	// answers; a result for an attempt that is over (the ring timed out and
	// the agent rings again) is refused with ErrState and changes nothing.
	Attempt uint32
	// Hangup, Abandon, optional (0: not said): who ended the call, kept in
	// its record as "ended_by". BySystem ends a call never answered as
	// "failed"; ByAgent of a call not connected is ErrState (an Abandon's,
	// ErrInvalid), field "by", and changes nothing.
	By EndParty
}

// ActionType is the kind of an Action.
type ActionType int

const (
	ActionRing     ActionType = C.SB_ACT_RING     // ring Agent on Device/URI for Timeout
	ActionCancel   ActionType = C.SB_ACT_CANCEL   // stop ringing Agent for Call
	ActionConnect  ActionType = C.SB_ACT_CONNECT  // bridge Call to Agent (it answered)
	ActionReject   ActionType = C.SB_ACT_REJECT   // reject Call with Reason
	ActionOverflow ActionType = C.SB_ACT_OVERFLOW // Call moved to Queue (Reason says why)
	ActionWait     ActionType = C.SB_ACT_WAIT     // Call keeps waiting; re-decided by Due
	ActionEnd      ActionType = C.SB_ACT_END      // Call is finished (Reason: its outcome)
	ActionAgent    ActionType = C.SB_ACT_AGENT    // Agent changed to Status (Reason)
)

var actionNames = [...]string{"", "ring", "cancel", "connect", "reject", "overflow", "wait", "end", "agent"}

// String returns the action's name as in JSON: "ring", "cancel"...
func (t ActionType) String() string {
	if t > 0 && int(t) < len(actionNames) {
		return actionNames[t]
	}
	return fmt.Sprintf("ActionType(%d)", int(t))
}

// MarshalText makes an ActionType a JSON string.
func (t ActionType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Action is one thing the gateway should do, in the order returned.
type Action struct {
	Type    ActionType
	Account string
	Call    string        // "" for ActionAgent
	Agent   string        // Ring, Cancel, Connect, Agent
	Device  string        // Ring, Connect: "landline", "mobile" or "softphone"
	URI     string        // Ring, Connect: the device's dial URI
	Queue   string        // the call's queue (Overflow: the new queue)
	Reason  string        // Reject, Overflow, End, Agent; Cancel: why the ring ended
	Status  string        // Agent: the new status name
	Timeout time.Duration // Ring: how long to ring
	Attempt uint32        // Ring: the call's ring attempt (give it back in Event.Attempt)
	Due     time.Time     // Wait: when the engine next takes the call up (zero: when an agent frees up)
}

// MarshalJSON renders the action as the engine does (sb_result_json, the
// daemon's stream): {"type":"ring","account":...,"timeout":20}.
func (a Action) MarshalJSON() ([]byte, error) {
	type out struct {
		Type    ActionType `json:"type"`
		Account string     `json:"account,omitempty"`
		Call    string     `json:"call,omitempty"`
		Agent   string     `json:"agent,omitempty"`
		Device  string     `json:"device,omitempty"`
		URI     string     `json:"uri,omitempty"`
		Queue   string     `json:"queue,omitempty"`
		Reason  string     `json:"reason,omitempty"`
		Status  string     `json:"status,omitempty"`
		Timeout *int       `json:"timeout,omitempty"`
		Attempt uint32     `json:"attempt,omitempty"`
		DueMS   int64      `json:"due_ms,omitempty"`
	}
	o := out{Type: a.Type, Account: a.Account, Call: a.Call, Agent: a.Agent, Device: a.Device,
		URI: a.URI, Queue: a.Queue, Reason: a.Reason, Status: a.Status, Attempt: a.Attempt}
	if a.Type == ActionRing {
		t := int(a.Timeout / time.Second)
		o.Timeout = &t
	}
	if a.Type == ActionWait && !a.Due.IsZero() {
		o.DueMS = a.Due.UnixMilli()
	}
	return json.Marshal(o)
}

func goStr(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

func resultActions(res *C.sb_result) []Action {
	n := int(C.sb_result_count(res))
	if n == 0 {
		return nil
	}
	out := make([]Action, n)
	for i := range out {
		a := C.sb_result_action(res, C.size_t(i))
		out[i] = Action{Type: ActionType(a._type), Account: goStr(a.account), Call: goStr(a.call_id),
			Agent: goStr(a.agent_id), Device: goStr(a.device), URI: goStr(a.uri),
			Queue: goStr(a.queue_id), Reason: goStr(a.reason), Status: goStr(a.status),
			Timeout: time.Duration(a.timeout_s) * time.Second, Attempt: uint32(a.attempt)}
		if a.due_ms != 0 {
			out[i].Due = time.UnixMilli(int64(a.due_ms))
		}
	}
	return out
}

// Submit applies one event and returns the actions it caused — including
// actions for other calls (an agent freed up, so a waiting call rings now).
// On error nothing changed.
func (e *Engine) Submit(account string, ev Event) ([]Action, error) {
	var attrs []byte
	if ev.Attrs != nil {
		b, err := json.Marshal(ev.Attrs)
		if err != nil {
			return nil, &Error{Code: ErrInvalid, Message: "cannot encode attrs: " + err.Error(), Field: "attrs"}
		}
		if err := checkStrings("attrs", map[string]any(ev.Attrs), b); err != nil {
			return nil, err
		}
		attrs = b
	}
	// Status: none (0) is refused for an AgentStatus event and, like the
	// fields the engine refuses, for any other (which takes no status).
	cstatus := int(ev.Status) - 1
	if ev.Type == AgentStatus && ev.Status == 0 {
		return nil, &Error{Code: ErrInvalid, Field: "status",
			Message: "missing field 'status' (Offline, Available or Paused)"}
	} else if ev.Type != AgentStatus && ev.Status != 0 {
		return nil, &Error{Code: ErrInvalid, Field: "status",
			Message: "unknown field 'status' for this event (only AgentStatus events take one)"}
	} else if ev.Status == 0 {
		cstatus = 0
	}
	res, err := e.begin()
	if err != nil {
		return nil, err
	}
	defer e.end(res)
	s, block, err := cstrings("account", account, "call", ev.Call, "queue", ev.Queue, "agent", ev.Agent,
		"caller", ev.Caller, "called", ev.Called, "reason", ev.Reason, "attrs", string(attrs))
	if err != nil {
		return nil, err
	}
	defer C.free(block)
	opt := func(i int, v string) *C.char {
		if v == "" {
			return nil
		}
		return s[i]
	}
	cev := C.sb_event{_type: C.sb_event_type(int32Sat(int(ev.Type))), account: s[0],
		call_id: opt(1, ev.Call), queue_id: opt(2, ev.Queue), agent_id: opt(3, ev.Agent),
		caller: opt(4, ev.Caller), called: opt(5, ev.Called), priority: C.int(int32Sat(ev.Priority)),
		outcome: C.sb_ring_outcome(int32Sat(int(ev.Outcome))),
		status:  C.sb_agent_status(int32Sat(cstatus)), reason: opt(6, ev.Reason),
		attrs_json: opt(7, string(attrs)), attempt: C.uint32_t(ev.Attempt),
		by: C.sb_end_party(int32Sat(int(ev.By)))}
	rc := C.sb_submit(e.eng, &cev, res)
	e.noteChanged(res)
	if rc != 0 {
		return nil, resultError(rc, res)
	}
	return resultActions(res), nil
}

// int32Sat is v held to C's int: sb_event's numbers and enums are 32 bits,
// and a Go int beyond them must reach the engine as out of range (refused),
// not cut to its low 32 bits (1<<32 + 50 as priority 50, 1<<32 + 1 as the
// caller or as answered).
func int32Sat(v int) int32 {
	if v > math.MaxInt32 {
		return math.MaxInt32
	} else if v < math.MinInt32 {
		return math.MinInt32
	}
	return int32(v)
}

// SubmitJSON applies one event given as JSON (sb_submit_json), e.g.
// {"type":"offer","call":"c1","queue":"support","caller":"+4930123456"}.
func (e *Engine) SubmitJSON(account string, event []byte) ([]Action, error) {
	res, err := e.begin()
	if err != nil {
		return nil, err
	}
	defer e.end(res)
	s, block, err := cstrings("account", account)
	if err != nil {
		return nil, err
	}
	defer C.free(block)
	p, n := bytesPtr(event)
	rc := C.sb_submit_json(e.eng, s[0], p, n, res)
	e.noteChanged(res)
	if rc != 0 {
		return nil, resultError(rc, res)
	}
	return resultActions(res), nil
}

// Tick fires every timer due on the engine's clock (ring timeouts, wrap-up
// ends, policy wake-ups, max-wait overflows) and returns their actions.
func (e *Engine) Tick() ([]Action, error) {
	res, err := e.begin()
	if err != nil {
		return nil, err
	}
	defer e.end(res)
	rc := C.sb_tick(e.eng, res)
	e.noteChanged(res)
	if rc != 0 {
		return nil, resultError(rc, res)
	}
	return resultActions(res), nil
}

// TickFor fires due timers for about budget of work at most (sb_tick_for;
// zero: no limit, as Tick), one timer at least, and returns their actions.
// more is true when timers were still due as the time ran out: call it
// again, letting the loop's other work run in between, so that thousands of
// calls waking at once cannot hold it. A negative budget is ErrInvalid (field "budget") with
// nothing fired, not a tick without a limit; a budget under a millisecond
// counts as one, and one past the engine's 32-bit milliseconds (about 49
// days) as that many, as in Sweep.
func (e *Engine) TickFor(budget time.Duration) (actions []Action, more bool, err error) {
	if budget < 0 {
		// Not "no limit": a share computed from a deadline already past
		// must not fire every due timer however long that takes.
		return nil, false, &Error{Code: ErrInvalid, Field: "budget",
			Message: fmt.Sprintf("budget must be 0 (no limit) or more, not %v", budget)}
	}
	ms := budget.Milliseconds()
	if budget > 0 && ms < 1 {
		ms = 1
	}
	if ms > math.MaxUint32 {
		ms = math.MaxUint32
	}
	res, err := e.begin()
	if err != nil {
		return nil, false, err
	}
	defer e.end(res)
	var left C.int
	rc := C.sb_tick_for(e.eng, C.uint32_t(ms), &left, res)
	e.noteChanged(res)
	if rc != 0 {
		return nil, false, resultError(rc, res)
	}
	return resultActions(res), left != 0, nil
}

// Batch runs fn, and the events the goroutine running it submits meanwhile
// share one write transaction and one commit (sb_batch_begin /
// sb_batch_end): what a gateway answering a burst of events at once wants.
//
//	err := eng.Batch(func() error {
//		for _, ev := range burst {
//			actions, err := eng.Submit("acme", ev) // at once; an error refuses that event alone
//			...
//		}
//		return nil
//	})
//
// Each Submit returns its actions (or its error, that event alone changing
// nothing, and the batch goes on) at once, but nothing of the batch is
// stored until fn has returned and the batch is committed: when that commit
// fails, Batch returns its error (an *Error: ErrFull for a full disk...) and
// none of the batch's events happened, whatever their calls returned.
//
// An error fn returns, or a panic, does not undo the events submitted before
// it — there is no rollback: they are committed all the same, and Batch
// returns fn's error (or the panic goes on). When that commit fails too,
// Batch returns the commit's error, wrapping it with fn's message
// (errors.As finds the *Error); a panic goes on and the commit's error is
// lost.
//
// The engine's batch belongs to an OS thread, and a goroutine may move
// between threads between cgo calls: Batch locks the calling goroutine to
// its thread (runtime.LockOSThread) until it returns, so submit from fn's own
// goroutine. Other goroutines' writes — and other processes' — wait until
// Batch returns: keep fn short, and never wait in it for another goroutine
// that writes to the data directory (it would wait for ever). Reads in fn see
// the batch's events; a write that is not an event (a put, Tick, Sweep...)
// commits the batch so far first. A Batch inside fn joins the open one (the
// outer Batch commits); a Batch of another goroutine waits for the open one
// to end, as that goroutine's other writes do (the engine itself refuses a
// second thread's batch, SB_ESTATE). Close waits for an open Batch as for a
// call in flight (a Batch still waiting then returns ErrInvalid, "the engine
// is closing"); inside fn it returns ErrState.
func (e *Engine) Batch(fn func() error) (err error) {
	if e == nil {
		return errClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := C.sbgo_thread()
	e.mu.Lock()
	if e.batchDepth > 0 && e.batchThread == self {
		e.batchDepth++ // nested: joins the open batch
		e.mu.Unlock()
		defer func() {
			e.mu.Lock()
			e.batchDepth--
			e.mu.Unlock()
		}()
		return fn()
	}
	e.mu.Unlock()
	e.batchMu.Lock() // another goroutine's batch: wait for its end
	defer e.batchMu.Unlock()
	// The batch counts as a call in flight until it ends: Close waits for it.
	eng, err := e.enter()
	if err != nil {
		return err
	}
	if rc := C.sb_batch_begin(eng); rc != 0 {
		// SB_ESTATE: a batch of this engine begun by a thread outside
		// Batch (the engine's C API called through another binding).
		e.leave()
		if rc == C.SB_ESTATE {
			return &Error{Code: ErrState, Message: "another thread's batch is open on this engine"}
		}
		return &Error{Code: Code(rc), Message: strings.TrimPrefix(Code(rc).Error(), Code(rc).Name()+": ")}
	}
	e.mu.Lock()
	e.batchThread, e.batchDepth = self, 1
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.batchDepth = 0
		e.mu.Unlock()
		res := e.take() // nil when out of memory: sb_batch_end takes NULL, and must run
		var endErr error
		if rc := C.sb_batch_end(eng, res); rc != 0 {
			if res != nil {
				endErr = resultError(rc, res)
			} else {
				endErr = &Error{Code: Code(rc), Message: strings.TrimPrefix(Code(rc).Error(), Code(rc).Name()+": ")}
			}
		}
		if res != nil {
			e.giveBack(res)
		}
		e.leave()
		switch {
		case endErr != nil && err != nil:
			err = fmt.Errorf("%w (and the Batch function returned: %v)", endErr, err)
		case endErr != nil:
			err = endErr
		}
	}()
	return fn()
}

// TrackChanges runs fn and reports whether a call fn's goroutine made on the
// engine meanwhile committed a change to the store (sb_result_changed):
// a put, a delete, an event or a tick that wrote something. A read, a call
// that found the state already as asked (an agent's status set to the one it
// has, a policy's history forgotten when it has none) and a call that failed
// changed nothing — but for ErrStore from a sync that failed after its
// commit, whose change stands. err is fn's.
//
//	changed, err := eng.TrackChanges(func() error {
//		_, err := eng.Submit("acme", ev)
//		return err
//	})
//	if err == nil && changed {
//		err = eng.Sync() // with SyncDefer: acknowledge only what is durable
//	}
//
// A call that changed nothing has nothing to lose to a sync that fails. In a
// Batch, a TrackChanges around one Submit tells that event's own change
// (what the batch's commit is to store, and may yet fail to). Only the
// calls of fn's own goroutine count (TrackChanges locks it to its thread,
// runtime.LockOSThread, until it returns), not those of goroutines it
// starts; a TrackChanges inside fn reports its own calls, which count for
// the outer one too. The Go binding's results are shared by the engine's
// goroutines, so this is how it says what Python's Engine.changed() and
// Lua's eng:changed() say of a thread's last call.
func (e *Engine) TrackChanges(fn func() error) (changed bool, err error) {
	if e == nil {
		return false, errClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := C.sbgo_thread()
	mine := new(bool)
	e.mu.Lock()
	if e.trackers == nil {
		e.trackers = map[C.uintptr_t]*bool{}
	}
	outer := e.trackers[self]
	e.trackers[self] = mine
	e.mu.Unlock()
	e.tracking.Add(1)
	defer func() {
		e.tracking.Add(-1)
		e.mu.Lock()
		changed = *mine
		if outer != nil {
			e.trackers[self] = outer
			*outer = *outer || changed
		} else {
			delete(e.trackers, self)
		}
		e.mu.Unlock()
	}()
	return false, fn()
}

// noteChanged tells the TrackChanges open on the calling thread, if any,
// that the call just made with res committed a change.
func (e *Engine) noteChanged(res *C.sb_result) {
	if e.tracking.Load() == 0 || C.sb_result_changed(res) == 0 {
		return
	}
	self := C.sbgo_thread()
	e.mu.Lock()
	if p := e.trackers[self]; p != nil {
		*p = true
	}
	e.mu.Unlock()
}

// NextDeadline returns the time of the earliest pending timer; ok is false
// when there is none, and on a closed (or closing) engine.
func (e *Engine) NextDeadline() (t time.Time, ok bool) {
	eng, err := e.enter()
	if err != nil {
		return time.Time{}, false
	}
	defer e.leave()
	ms := int64(C.sb_next_deadline(eng))
	if ms == math.MaxInt64 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// CallList lists the account's live calls (waiting, ringing or connected),
// all or (queue not "") those in one queue, in id order, without numbers:
// each with "id", "state", "queue", "priority", "offered_ms", "queued_ms",
// "attempts", "ringing" (empty once connected) and, once connected, "agent",
// "device" and "answered_ms".
// ErrNotFound for a
// queue the account does not have.
func (e *Engine) CallList(account, queue string) ([]map[string]any, error) {
	m, err := e.call([]string{"account", account, "queue", queue}, func(res *C.sb_result, s []*C.char) C.int {
		q := s[1]
		if queue == "" {
			q = nil
		}
		return C.sb_call_list(e.eng, s[0], q, res)
	})
	return list(m, "calls", err)
}

// CallListPage reads a page of CallList: the live calls (all, or those in
// queue when it is not "") whose ids come after after ("": from the first),
// limit at most (0: all), and next, the last id given, while more follow
// ("" on the last page): the next page's after. ErrNotFound (Field "queue")
// for a queue the account does not have; ErrInvalid for an after that is no
// call id (Field "after") and a negative limit (Field "limit").
func (e *Engine) CallListPage(account, queue, after string, limit int) (calls []map[string]any, next string, err error) {
	return e.page("calls", limit, []string{"account", account, "queue", queue, "after", after},
		func(res *C.sb_result, s []*C.char, n C.size_t) C.int {
			q := s[1]
			if queue == "" {
				q = nil
			}
			return C.sb_call_list_page(e.eng, s[0], q, s[2], n, res)
		})
}

// CallGet reads a call with its state and decision trace (its record once
// it has ended).
func (e *Engine) CallGet(account, call string) (map[string]any, error) {
	return e.call([]string{"account", account, "call", call}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_call_get(e.eng, s[0], s[1], res)
	})
}

// ---------------------------------------------------------------------------
// Policies

// PolicyPut validates then stores an account policy: compiled in the
// sandbox, its top level run, its hooks checked, and cases (scenario cases:
// nil, JSON bytes, or a value to marshal) run. Only if all pass is it stored
// and every engine on the data directory moves to it. It returns the
// policy's name and version.
func (e *Engine) PolicyPut(account, name string, source []byte, cases any) (version string, err error) {
	return e.policyPut(account, name, source, cases, nil)
}

// PolicyPutIf is PolicyPut only when the account's upload of that name is
// the one the caller read: ifVersion is its version ("*": any upload; "":
// none yet). Otherwise ErrState with field "if_version", the version there
// in the message, and nothing changed (sb_policy_put_if): a release tool
// never overwrites an upload made since it read the policy.
func (e *Engine) PolicyPutIf(account, name string, source []byte, cases any, ifVersion string) (version string, err error) {
	return e.policyPut(account, name, source, cases, &ifVersion)
}

func (e *Engine) policyPut(account, name string, source []byte, cases any, ifVersion *string) (version string, err error) {
	r, err := e.PolicyPutReport(account, name, source, cases, ifVersion)
	if err != nil {
		return "", err
	}
	return r.Version, nil
}

// PolicyUpload is a policy upload's whole answer (sb_policy_put's document).
type PolicyUpload struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Previous string `json:"previous"` // the version of the upload it replaced; "" when none
	// "file:line: ..." for what PolicyCheck faults in it (stored all the
	// same: a typo in a branch, say).
	Warnings []string `json:"warnings"`
}

// PolicyPutReport is PolicyPut (ifVersion nil) or PolicyPutIf (ifVersion
// given) with the upload's whole answer, as Python's policy_put and Lua's
// eng:policy_put give it: the version replaced, and the warnings of a
// policy that PolicyCheck faults but that is stored all the same.
func (e *Engine) PolicyPutReport(account, name string, source []byte, cases any, ifVersion *string) (*PolicyUpload, error) {
	cj, err := document(cases)
	if err != nil {
		return nil, err
	}
	iv := ""
	if ifVersion != nil {
		iv = *ifVersion
	}
	var r PolicyUpload
	err = e.callInto([]string{"account", account, "name", name, "cases", string(cj), "if_version", iv}, &r, func(res *C.sb_result, s []*C.char) C.int {
		var cp, ivp *C.char
		if cj != nil {
			cp = s[2]
		}
		if ifVersion != nil {
			ivp = s[3]
		}
		p, n := bytesPtr(source)
		return C.sb_policy_put_if(e.eng, s[0], s[1], p, n, cp, ivp, res)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// PolicyInfo describes one policy an account's queues can use.
type PolicyInfo struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Source   string `json:"source"` // "account" or "shared"
	State    string `json:"state"`  // "ok" or "quarantined"
	Failures int    `json:"failures"`
	// An account's upload standing in place of a shared policy of its name.
	ShadowsShared bool `json:"shadows_shared"`
	// The version loaded in this engine's policy state of the account, once
	// the policy has run there ("" before): see sb_policy_get.
	LoadedVersion string `json:"loaded_version"`
}

// PolicyList lists the account's own policies and the shared ones.
func (e *Engine) PolicyList(account string) ([]PolicyInfo, error) {
	res, err := e.begin()
	if err != nil {
		return nil, err
	}
	defer e.end(res)
	s, block, err := cstrings("account", account)
	if err != nil {
		return nil, err
	}
	defer C.free(block)
	if rc := C.sb_policy_list(e.eng, s[0], res); rc != 0 {
		return nil, resultError(rc, res)
	}
	var doc struct {
		Policies []PolicyInfo `json:"policies"`
	}
	var n C.size_t
	p := C.sb_result_json(res, &n)
	if err := json.Unmarshal(C.GoBytes(unsafe.Pointer(p), C.int(n)), &doc); err != nil {
		return nil, &Error{Code: ErrStore, Message: "unreadable policy list: " + err.Error()}
	}
	return doc.Policies, nil
}

// Reload re-reads Config.PolicyDir, validates every file and swaps them all
// at once — or changes nothing and returns an ErrPolicy error naming the file.
// It returns how many policies changed; ReloadReport says which, and the
// warnings.
func (e *Engine) Reload() (changed int, err error) {
	r, err := e.ReloadReport()
	if err != nil {
		return 0, err
	}
	return r.Changed, nil
}

// ReloadedPolicy is a policy a reload stored or removed.
type ReloadedPolicy struct {
	Name     string `json:"name"`
	Version  string `json:"version"`  // "" for a policy removed
	Previous string `json:"previous"` // the version it replaced; "" for a new one
	// For a policy removed: the accounts whose store of it (ctx.set) went
	// with it, each without an upload of that name.
	StoresDropped int `json:"stores_dropped"`
}

// ReloadReport is what a reload changed (sb_reload's document).
type ReloadReport struct {
	Changed  int              `json:"changed"`
	Policies []ReloadedPolicy `json:"policies"` // each policy stored or removed
	// "<policy_dir>/<name>.lua:<line>: ..." for a policy stored that
	// PolicyCheck faults but that loads all the same.
	Warnings []string `json:"warnings"`
}

// ReloadReport is Reload with its whole answer, as Python's reload() and
// Lua's eng:reload() give it: the policies stored or removed, each with its
// version and the one it replaced, and the warnings.
func (e *Engine) ReloadReport() (*ReloadReport, error) {
	var r ReloadReport
	if err := e.callInto(nil, &r, func(res *C.sb_result, _ []*C.char) C.int {
		return C.sb_reload(e.eng, res)
	}); err != nil {
		return nil, err
	}
	return &r, nil
}

// scratch runs fn with a private result (for the functions without an engine).
func scratch(fn func(res *C.sb_result) error) error {
	res := C.sb_result_new()
	if res == nil {
		return &Error{Code: ErrNoMemory, Message: "out of memory"}
	}
	defer C.sb_result_free(res)
	return fn(res)
}

// PolicyCheck compiles and lints a policy without an engine. On problems it
// returns an ErrPolicy *Error whose Message lists them as "file:line: message",
// one per line.
func PolicyCheck(name string, source []byte) error {
	return policyCheck(nil, name, source)
}

// PolicyCheckConfig is PolicyCheck under cfg's policy budgets
// (PolicyInstructions, PolicyWallTime, PolicyMemory, as Open takes them: zero
// the default, negative switched off) instead of the defaults
// (sb_policy_check_cfg): what a reload or an upload on an engine opened with
// cfg would find. No other field of cfg is read.
func PolicyCheckConfig(cfg Config, name string, source []byte) error {
	return policyCheck(&cfg, name, source)
}

// budgets is the sb_config the policy tools take: the library's defaults
// with cfg's policy budgets.
func budgets(cfg *Config) C.sb_config {
	var c C.sb_config
	C.sb_config_init(&c)
	setBudgets(&c, cfg)
	return c
}

// policyCheck is PolicyCheck (cfg nil: sb_policy_check) and PolicyCheckConfig.
func policyCheck(cfg *Config, name string, source []byte) error {
	return scratch(func(res *C.sb_result) error {
		s, block, err := cstrings("name", name)
		if err != nil {
			return err
		}
		defer C.free(block)
		p, n := bytesPtr(source)
		var rc C.int
		if cfg == nil {
			rc = C.sb_policy_check(s[0], p, n, res)
		} else {
			c := budgets(cfg)
			rc = C.sb_policy_check_cfg(&c, s[0], p, n, res)
		}
		if rc != 0 {
			return resultError(rc, res)
		}
		return nil
	})
}

// CaseResult is the outcome of one scenario case.
type CaseResult struct {
	Name     string          `json:"name"`
	OK       bool            `json:"ok"`
	Got      json.RawMessage `json:"got"`
	Expected json.RawMessage `json:"expected"`
	Message  string          `json:"message"` // why a case failed ("" when OK)
}

// TestReport is the outcome of PolicyTest.
type TestReport struct {
	Passed int          `json:"passed"`
	Failed int          `json:"failed"`
	Cases  []CaseResult `json:"cases"`
}

// PolicyTest runs scenario cases (a JSON array) against a policy without a
// data directory. The report comes back whether or not every case passed
// (check Failed); err is set only when the cases could not run at all (the
// policy does not compile, the cases are malformed).
func PolicyTest(name string, source, cases []byte) (*TestReport, error) {
	return policyTest(nil, name, source, cases)
}

// PolicyTestConfig is PolicyTest under cfg's policy budgets, as
// PolicyCheckConfig takes them (sb_policy_test_cfg).
func PolicyTestConfig(cfg Config, name string, source, cases []byte) (*TestReport, error) {
	return policyTest(&cfg, name, source, cases)
}

// policyTest is PolicyTest (cfg nil: sb_policy_test) and PolicyTestConfig.
func policyTest(cfg *Config, name string, source, cases []byte) (*TestReport, error) {
	var rep *TestReport
	err := scratch(func(res *C.sb_result) error {
		s, block, err := cstrings("name", name)
		if err != nil {
			return err
		}
		defer C.free(block)
		sp, sn := bytesPtr(source)
		cp, cn := bytesPtr(cases)
		if cp == nil {
			cp, cn = s[0], 0 // a non-NULL pointer to no cases: "malformed", not "none given"
		}
		var rc C.int
		if cfg == nil {
			rc = C.sb_policy_test(s[0], sp, sn, cp, cn, res)
		} else {
			c := budgets(cfg)
			rc = C.sb_policy_test_cfg(&c, s[0], sp, sn, cp, cn, res)
		}
		if rc != 0 && C.sb_result_code(res) != 0 {
			return resultError(rc, res)
		}
		var n C.size_t
		p := C.sb_result_json(res, &n)
		rep = &TestReport{}
		if err := json.Unmarshal(C.GoBytes(unsafe.Pointer(p), C.int(n)), rep); err != nil {
			return &Error{Code: ErrStore, Message: "unreadable report: " + err.Error()}
		}
		return nil
	})
	return rep, err
}

// PolicyKeygen makes an Ed25519 key pair for signing policies (hex).
func PolicyKeygen() (publicKey, secretKey string, err error) {
	err = scratch(func(res *C.sb_result) error {
		if rc := C.sb_policy_keygen(res); rc != 0 {
			return resultError(rc, res)
		}
		m, err := resultDoc(res)
		if err != nil {
			return err
		}
		publicKey, _ = m["public_key"].(string)
		secretKey, _ = m["secret_key"].(string)
		return nil
	})
	return
}

// PolicySign returns source with a "--@signature" line made with the
// 128-hex secret key (an existing signature line is replaced).
func PolicySign(source []byte, secretKey string) ([]byte, error) {
	var out []byte
	err := scratch(func(res *C.sb_result) error {
		s, block, err := cstrings("secret_key", secretKey)
		if err != nil {
			return err
		}
		defer C.free(block)
		p, n := bytesPtr(source)
		if rc := C.sb_policy_sign(p, n, s[0], res); rc != 0 {
			return resultError(rc, res)
		}
		m, err := resultDoc(res)
		if err != nil {
			return err
		}
		src, _ := m["source"].(string)
		out = []byte(src)
		return nil
	})
	return out, err
}

// PolicyVerify checks that source carries a valid "--@signature" line made
// with the secret key of publicKey (64 hex characters), as an engine with
// Config.RequireSignedPolicies does before it loads a policy: nil when it
// verifies; an ErrPolicy *Error (Field "signature") saying why not (unsigned,
// changed after signing, or not signed with that key); ErrInvalid (Field
// "public_key") for a key that is not 64 hex characters.
func PolicyVerify(source []byte, publicKey string) error {
	return scratch(func(res *C.sb_result) error {
		s, block, err := cstrings("public_key", publicKey)
		if err != nil {
			return err
		}
		defer C.free(block)
		p, n := bytesPtr(source)
		if p == nil {
			p = s[0] // a valid pointer for an empty source (NULL is "no source")
		}
		if rc := C.sb_policy_verify(p, n, s[0], res); rc != 0 {
			return resultError(rc, res)
		}
		return nil
	})
}

// ---------------------------------------------------------------------------
// API keys

// APIKeyCreate makes a new key for the account. The key is shown only now;
// the engine keeps a keyed hash of it.
func (e *Engine) APIKeyCreate(account string) (keyID, key string, err error) {
	m, err := e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_apikey_create(e.eng, s[0], res)
	})
	if err != nil {
		return "", "", err
	}
	keyID, _ = m["key_id"].(string)
	key, _ = m["key"].(string)
	return keyID, key, nil
}

// APIKeyInfo describes one of an account's API keys. The key itself is not
// stored, so not listed.
type APIKeyInfo struct {
	KeyID string `json:"key_id"` // what APIKeyRevoke takes
	// When it was made, Unix ms; 0 for a key made before keys kept it
	// (data directory format 7).
	CreatedMs int64 `json:"created_ms,omitempty"`
}

// APIKeyList lists the account's keys by id (sb_apikey_list): what an
// operator revokes with APIKeyRevoke. ErrNotFound (Field "account") for an
// account that does not exist.
func (e *Engine) APIKeyList(account string) ([]APIKeyInfo, error) {
	var doc struct {
		Keys []APIKeyInfo `json:"keys"`
	}
	err := e.callInto([]string{"account", account}, &doc, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_apikey_list(e.eng, s[0], res)
	})
	if err != nil {
		return nil, err
	}
	if doc.Keys == nil {
		doc.Keys = []APIKeyInfo{}
	}
	return doc.Keys, nil
}

// APIKeyVerify reports whether key is a current key of account (compared in
// constant time; false for unknown accounts too, for an account holding a NUL
// byte, and on a closed engine).
func (e *Engine) APIKeyVerify(account, key string) bool {
	eng, err := e.enter()
	if err != nil {
		return false
	}
	defer e.leave()
	s, block, err := cstrings("account", account)
	if err != nil {
		return false
	}
	defer C.free(block)
	kb := []byte(key)
	p, n := bytesPtr(kb)
	if p == nil {
		p = s[0] // a valid pointer for an empty key
	}
	return C.sb_apikey_verify(eng, s[0], p, n) == 0
}

// APIKeyRevoke revokes one key by its id (from APIKeyCreate or APIKeyList).
func (e *Engine) APIKeyRevoke(account, keyID string) error {
	_, err := e.call([]string{"account", account, "key_id", keyID}, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_apikey_revoke(e.eng, s[0], s[1], res)
	})
	return err
}

// ---------------------------------------------------------------------------
// Introspection and durability

// Stats returns this engine handle's counters and gauges (sb_stats): events,
// decisions, policy failures, latency histogram, LMDB usage.
func (e *Engine) Stats() (map[string]any, error) {
	return e.call(nil, func(res *C.sb_result, _ []*C.char) C.int {
		return C.sb_stats(e.eng, res)
	})
}

// Sync makes every event committed so far durable; needed with SyncDefer
// before acknowledging, harmless otherwise.
func (e *Engine) Sync() error {
	eng, err := e.enter()
	if err != nil {
		return err
	}
	defer e.leave()
	if rc := C.sb_sync(eng); rc != 0 {
		return &Error{Code: Code(rc), Message: strings.TrimPrefix(Code(rc).Error(), Code(rc).Name()+": ")}
	}
	return nil
}

// SyncProgress tells where syncs stand (sb_sync_progress), for a caller that
// acknowledges only what is durable and would rather not sync when it need
// not (SyncDefer). written is the number of this process's newest commit on
// the data directory that changed something, durable the newest number known
// to be on disk; numbers only grow, 0 is before any. A commit's own sync
// makes every commit before it durable, so under steady writes the next
// commit often makes a Sync unnecessary: read written after a commit; once
// durable reaches it, that commit and all before it are on disk.
//
// ordered is false where commits do not sync in order (an engine with
// SyncNone opened the data directory first in this process; the engine's
// SB_ESTATE): the numbers then say nothing (durable is 0), and only Sync
// makes anything durable. That is not an error; err reports the others (a
// closed engine...).
func (e *Engine) SyncProgress() (written, durable uint64, ordered bool, err error) {
	eng, err := e.enter()
	if err != nil {
		return 0, 0, false, err
	}
	defer e.leave()
	var w, d C.uint64_t
	rc := C.sb_sync_progress(eng, &w, &d)
	if rc != 0 && rc != C.SB_ESTATE {
		return 0, 0, false, &Error{Code: Code(rc), Message: strings.TrimPrefix(Code(rc).Error(), Code(rc).Name()+": ")}
	}
	return uint64(w), uint64(d), rc == 0, nil
}

// ---------------------------------------------------------------------------
// Backups

// BackupReport describes a backup Backup wrote.
type BackupReport struct {
	Dir       string `json:"dir"`        // the backup's directory, as given
	Bytes     int64  `json:"bytes"`      // the size of the copied data.mdb
	MasterKey string `json:"master_key"` // what became of the master key: "not copied: ..."
}

// Backup copies the data directory into dest (created, or an empty
// directory) while this engine and others keep working (sb_backup): data.mdb
// as one transaction saw it, compacted (the old versions of anonymized or
// deleted records are left behind), and the wrapped data keys (data.keys).
// The master key is not copied: the backup opens only with the data
// directory's key (Config.KeyFile), which must be kept apart. To restore,
// stop every engine on the data directory and put the backup's files in its
// place. A dest that is not empty is ErrExists (Field "dest") and is left as
// it was; "" or the data directory itself is ErrInvalid; a full disk ErrFull.
func (e *Engine) Backup(dest string) (*BackupReport, error) {
	var r BackupReport
	err := e.callInto([]string{"dest", dest}, &r, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_backup(e.eng, s[0], res)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// ---------------------------------------------------------------------------
// Master key rotation

// KeyRotation describes a rotation MasterKeyRotate made (the engine's answer).
type KeyRotation struct {
	DataDir      string `json:"data_dir"`      // the data directory, as given
	KeyFile      string `json:"key_file"`      // the new key file: the directory opens with it alone now
	OldKeyFile   string `json:"old_key_file"`  // the old key file, left as it was
	NewKeyMade   bool   `json:"new_key_made"`  // the new key file was made (it was not there)
	Accounts     int    `json:"accounts"`      // the accounts whose data keys were wrapped again
	SlotsDropped int    `json:"slots_dropped"` // data key slots no account had (unreadable), left out
	Backups      string `json:"backups"`       // a reminder: backups made before open with the old key only
}

// MasterKeyRotate rotates the master key of the data directory cfg.DataDir
// (sb_master_key_rotate): every account's data key, and the key API keys are
// hashed with, are wrapped again under the key in newKeyFile, which is made
// (64 hex digits, mode 0600) when it is not there. From then on the
// directory opens only with the new key (Config.KeyFile = newKeyFile); every
// record and API key stays readable and valid. The old key (cfg.KeyFile, ""
// for <DataDir>/master.key) is left as it was: backups made before the
// rotation open only with it, so keep it as long as them. A crash at any
// point leaves the directory opening with the old key or the new one.
//
// An offline operation: no engine may have the directory open, in this
// process or another (ErrBusy, Field "data_dir"; Close every Engine on it
// first). Of cfg it reads DataDir, KeyFile, Log and LogLevel, no other
// field. Refused, nothing changed: ErrCrypto (Field "key_file") when the old
// key is not the directory's; ErrInvalid when the directory holds no data,
// there is no old key, or newKeyFile is not a valid key, is the old key or
// names one of the directory's own files; ErrFull or ErrStore when the new
// key or data keys cannot be written (switchboard.h says when the rotation
// took effect all the same).
func MasterKeyRotate(cfg Config, newKeyFile string) (*KeyRotation, error) {
	var c C.sb_config
	C.sb_config_init(&c)
	strs, block, err := cstrings("data_dir", cfg.DataDir, "key_file", cfg.KeyFile, "new_key_file", newKeyFile)
	if err != nil {
		return nil, err
	}
	defer C.free(block)
	c.data_dir = strs[0]
	if cfg.KeyFile != "" {
		c.key_file = strs[1]
	}
	if err := setLogLevel(&c, cfg.LogLevel); err != nil {
		return nil, err
	}
	if cfg.Log != nil {
		h := cgo.NewHandle(cfg.Log)
		defer h.Delete()
		C.sbgo_set_log(&c, C.uintptr_t(h))
	}
	var r KeyRotation
	err = scratch(func(res *C.sb_result) error {
		if rc := C.sb_master_key_rotate(&c, strs[2], res); rc != 0 {
			return resultError(rc, res)
		}
		return resultInto(res, &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}
