// Command gateway is a small gateway embedding Switchboard through the Go
// binding: the Go twin of examples/c-gateway/gateway.c.
//
// It reads call events as JSON lines on stdin (sb_submit_json's shape), hands
// each to the engine and prints the actions it caused, one JSON object per
// line:
//
//	{"type":"ring","account":"acme","call":"c1","agent":"alice",...,"timeout":20,"attempt":1}
//
// A refused event prints {"error":{"code":...,"message":...,"field":...}} and
// the gateway carries on. Between events it sleeps until the engine's next
// timer and fires it with Tick, printing those actions too; a tick that
// fails is reported on stderr ("gateway: tick: ...") and tried again a second
// later. It exits at the end of its input or on SIGINT/SIGTERM.
//
//	usage: gateway --data-dir DIR [--policy-dir DIR] [--account ID] [--sync group|sync|none]
//
// From the top of the source tree, after make:
//
//	build/switchboard replay examples/c-gateway/setup.jsonl --data-dir /tmp/sb-gw
//	(cd examples/go && go build -o /tmp/gateway-go ./gateway)
//	/tmp/gateway-go --data-dir /tmp/sb-gw --policy-dir policies < examples/c-gateway/calls.jsonl
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"switchboard"
)

// A tick that fails (a full or failing disk) leaves its timers due, and
// NextDeadline in the past: it is tried again this much later, not at once,
// or the loop would spin and print an error line after another.
const tickRetry = time.Second

func main() {
	dataDir := flag.String("data-dir", "", "the engine's data directory (required)")
	policyDir := flag.String("policy-dir", "", "shared policies")
	account := flag.String("account", "acme", "the account the events belong to")
	syncMode := flag.String("sync", "group", "group, sync or none")
	flag.Parse()
	modes := map[string]switchboard.SyncMode{"group": switchboard.SyncGroup,
		"sync": switchboard.SyncSync, "none": switchboard.SyncNone}
	mode, ok := modes[*syncMode]
	if *dataDir == "" || !ok || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	eng, err := switchboard.Open(switchboard.Config{DataDir: *dataDir, PolicyDir: *policyDir,
		Sync: mode, LogLevel: switchboard.LogWarn})
	if err != nil {
		// The engine's message alone, as the C and Python gateways print it.
		var se *switchboard.Error
		msg := err.Error()
		if errors.As(err, &se) {
			msg = se.Message
		}
		fmt.Fprintln(os.Stderr, "gateway:", msg)
		os.Exit(1)
	}
	// Exits 1 when reading the input failed (not its end), once the engine
	// is closed and the output flushed: deferred first, this runs last.
	exitCode := 0
	defer func() {
		if exitCode != 0 {
			os.Exit(exitCode)
		}
	}()
	defer eng.Close()

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	emit := func(actions []switchboard.Action, err error) {
		var se *switchboard.Error
		if errors.As(err, &se) {
			type detail struct {
				Code    string  `json:"code"`
				Message string  `json:"message"`
				Field   *string `json:"field"` // null when no field is at fault
			}
			d := detail{Code: se.Code.Name(), Message: se.Message}
			if se.Field != "" {
				d.Field = &se.Field
			}
			enc.Encode(struct {
				Error detail `json:"error"`
			}{d})
			// An event whose sync failed after its commit stands: its
			// actions come with the error, and are applied all the same.
			actions = se.Actions
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		for _, a := range actions {
			enc.Encode(a)
		}
	}

	// Lines arrive on a channel, so the loop can also wake for timers. A
	// line of any length is read whole (a bufio.Scanner would stop at its
	// buffer's size) and handed to the engine, which refuses what it must.
	lines := make(chan []byte)
	var readErr error // set before lines is closed
	go func() {
		in := bufio.NewReader(os.Stdin)
		for {
			line, err := in.ReadBytes('\n')
			if len(line) > 0 { // a last line without a newline counts
				lines <- line
			}
			if err != nil {
				if err != io.EOF {
					readErr = err
				}
				break
			}
		}
		close(lines)
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	timer := time.NewTimer(time.Hour)
	var retryAt time.Time // after a failed tick, the next not before this
	for {
		// Sleep until input arrives or the next timer is due.
		if !timer.Stop() {
			select { // a time it fired at that was not taken: not a wake-up now
			case <-timer.C:
			default:
			}
		}
		var wake <-chan time.Time
		if due, ok := eng.NextDeadline(); ok {
			if due.Before(retryAt) {
				due = retryAt
			}
			timer.Reset(time.Until(due))
			wake = timer.C
		}
		select {
		case line, open := <-lines:
			if !open {
				if readErr != nil {
					fmt.Fprintln(os.Stderr, "gateway: reading input:", readErr)
					exitCode = 1
				}
				return
			}
			line = bytes.TrimSpace(line)
			if len(line) > 0 && line[0] != '#' {
				emit(eng.SubmitJSON(*account, line))
			}
		case <-wake:
			actions, err := eng.Tick()
			if err != nil {
				var se *switchboard.Error
				msg := err.Error()
				if errors.As(err, &se) {
					msg = se.Message
				}
				fmt.Fprintln(os.Stderr, "gateway: tick:", msg)
				retryAt = time.Now().Add(tickRetry)
				if se != nil {
					actions = se.Actions // timers it fired before the sync failed
				}
			}
			emit(actions, nil)
		case <-signals:
			return
		}
		out.Flush()
	}
}
