package switchboard

// Call records and retention (switchboard.h, "Call records and retention").

/*
#include <stdint.h>
#include <stdlib.h>
#include "switchboard.h"

int sbgo_sweep(sb_engine *eng, uint32_t budget_ms, uintptr_t handle, sb_result *res);
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime/cgo"
	"time"
)

// msTime is the time of a millisecond count; zero for 0 (absent).
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// seconds is a JSON duration in seconds.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// RecordsQuery selects records for RecordsList. Zero fields select all:
// From and To bound the time calls ended, [From, To).
type RecordsQuery struct {
	From, To time.Time
	Queue    string
	Limit    int // zero: 100
	// After: the last record of the page before (as RecordsList gave it):
	// this page goes on from the record after it. One without "ended_ms"
	// and "id" is ErrInvalid (field after).
	After map[string]any
}

// RecordsList lists the account's call records without personal data, newest
// first. Each record is the engine's JSON object (see switchboard.h): "id",
// "queue", "outcome", "offered_ms", "ended_ms", "wait", "talk", "agent",
// "attempts_detail", "policy_versions", "attrs"... ErrNotFound for a Queue
// the account never had (a deleted queue's records are still listed).
func (e *Engine) RecordsList(account string, q RecordsQuery) ([]map[string]any, error) {
	query := map[string]any{}
	if !q.From.IsZero() {
		query["from_ms"] = q.From.UnixMilli()
	}
	if !q.To.IsZero() {
		query["to_ms"] = q.To.UnixMilli()
	}
	if q.Queue != "" {
		query["queue"] = q.Queue
	}
	if q.After != nil {
		// Both absent would be JSON nulls, which the engine reads as no
		// cursor at all: the first page again, a reader looping on it.
		if q.After["ended_ms"] == nil || q.After["id"] == nil {
			return nil, &Error{Code: ErrInvalid, Field: "after", Message: "RecordsQuery.After must be " +
				"a record of the page before, with its \"ended_ms\" and \"id\""}
		}
		query["before_ms"] = q.After["ended_ms"]
		query["before_id"] = q.After["id"]
	}
	if q.Limit != 0 {
		query["limit"] = q.Limit
	}
	b, err := json.Marshal(query)
	if err != nil {
		return nil, &Error{Code: ErrInvalid, Message: "cannot encode the query: " + err.Error()}
	}
	m, err := e.call([]string{"account", account}, func(res *C.sb_result, s []*C.char) C.int {
		p, n := bytesPtr(b)
		return C.sb_records_list(e.eng, s[0], p, n, res)
	})
	return list(m, "records", err)
}

// RecordsPages walks the records RecordsList gives for q, newest first, a
// page of q.Limit at a time (zero: 100), each page's After the last record
// of the page before (a q.After of its own: from the record after it). The
// refusals of RecordsList are Err after the Next that met them. See Pages.
func (e *Engine) RecordsPages(account string, q RecordsQuery) *Pages[map[string]any] {
	limit := q.Limit
	if limit == 0 {
		limit = 100
	}
	return &Pages[map[string]any]{read: func() ([]map[string]any, bool, error) {
		page, err := e.RecordsList(account, q)
		if len(page) > 0 {
			q.After = page[len(page)-1]
		}
		return page, len(page) < limit, err
	}}
}

// ExportFormat is the form of an access request's answer.
type ExportFormat int

const (
	ExportJSON ExportFormat = C.SB_EXPORT_JSON // the records as JSON objects
	ExportCSV  ExportFormat = C.SB_EXPORT_CSV  // RFC 4180 text, a header line, a line per record
)

// Export is the answer to an access request.
type Export struct {
	Number  string           `json:"number"`  // the number, normalized
	Count   int              `json:"count"`   // records found
	Records []map[string]any `json:"records"` // ExportJSON: with "role", "caller", "called", "personal_attrs"
	CSV     string           `json:"csv"`     // ExportCSV
	// Live counts the calls of the number in progress, which are in no
	// record yet: export again when they have ended.
	Live int `json:"live"`
}

// RecordsExport returns every record of number (E.164) in the account,
// decrypted, for an access request. Anonymized records are not found. The
// request is in the account's audit log (AuditList), an "access_request"
// entry with how many records it disclosed and no number; one whose entry
// cannot be written is refused (ErrFull for a full disk or map), disclosing
// nothing.
func (e *Engine) RecordsExport(account, number string, format ExportFormat) (*Export, error) {
	var x Export
	err := e.callInto([]string{"account", account, "number", number}, &x, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_records_export(e.eng, s[0], s[1], C.sb_export_format(format), res)
	})
	if err != nil {
		return nil, err
	}
	if format == ExportJSON {
		x.Count = len(x.Records)
	}
	return &x, nil
}

// ErasureReport is the outcome of an erasure request. Kept counts every
// record left, the Failed ones included (running the request again retries
// them); Held counts the kept records whose deletion or anonymization a legal
// hold prevented (the request runs again at the next sweep after a hold of
// the account is released); Live counts the calls of the number in progress,
// whose records go through the erase hook when they end (they are not in the
// other counts); Reasons counts the records by what happened and why.
// Earlier is what the account's requests of the same number before this one
// did (the latest 10, oldest first, while the erasure journal has them): a
// request made again counts only what was left, often nothing, and Earlier
// says what the first did. Nil when they could not be read (logged).
type ErasureReport struct {
	ErasureCounts
	Reasons map[string]int   `json:"reasons"`
	Earlier []EarlierErasure `json:"earlier"`
}

// ErasureCounts are what an erasure request did, as ErasureReport says.
type ErasureCounts struct {
	Deleted    int `json:"deleted"`
	Anonymized int `json:"anonymized"`
	Kept       int `json:"kept"`
	Failed     int `json:"failed"`
	Held       int `json:"held"`
	Live       int `json:"live"`
}

// EarlierErasure is an earlier erasure request of the number, with the
// counts its own report gave (AppliedAgain: those of the request applied
// again from the erasure journal to a restored backup). AppliedAgain is nil
// for one whose counts were not kept (made by an earlier version): its
// counts are then 0 and say nothing.
type EarlierErasure struct {
	ReceivedMs int64 `json:"received_ms"`
	ErasureCounts
	AppliedAgain *bool `json:"applied_again"`
}

// Erase runs an erasure request: every record of number in the account goes
// through the retention policy's erase hook (no policy or no hook: deleted).
func (e *Engine) Erase(account, number string) (*ErasureReport, error) {
	var r ErasureReport
	err := e.callInto([]string{"account", account, "number", number}, &r, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_erase(e.eng, s[0], s[1], res)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// HoldRequest is a legal hold to place: it covers one call's records (Call),
// every record of a number (Number, also records written later), or every
// record of a call in progress at any time in [From, To) — offered before To
// and ended at or after From. A range needs both, as sb_hold_place takes it:
// a zero From or To is ErrInvalid naming "from_ms" or "to_ms". From the
// start is time.UnixMilli(0); a range reaching as far as the engine goes ends
// at time.UnixMilli(math.MaxInt64). Reason is required; ID is optional (the
// engine makes one: "h" and 8 hex digits).
type HoldRequest struct {
	ID       string
	Call     string
	Number   string
	From, To time.Time
	Reason   string
}

// Hold is a legal hold as the engine shows it (a number hold shows no number).
type Hold struct {
	ID       string
	Kind     string // "call", "number" or "range"
	Reason   string
	Call     string    // kind "call"
	From, To time.Time // kind "range" (from the start: time.UnixMilli(0)); zero for the others
	Created  time.Time
	Released bool // set by HoldRelease
}

type holdJSON struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Reason   string `json:"reason"`
	Call     string `json:"call"`
	From     int64  `json:"from_ms"`
	To       int64  `json:"to_ms"`
	Created  int64  `json:"created_ms"`
	Released bool   `json:"released"`
}

func (h holdJSON) hold() Hold {
	x := Hold{ID: h.ID, Kind: h.Kind, Reason: h.Reason, Call: h.Call, Created: msTime(h.Created),
		Released: h.Released}
	if h.Kind == "range" {
		// Both bounds as they were placed, from_ms 0 (from the start) too,
		// so a hold read back can be placed again as it is.
		x.From, x.To = time.UnixMilli(h.From), time.UnixMilli(h.To)
	}
	return x
}

// HoldPlace places a legal hold; ErrExists for a taken ID.
func (e *Engine) HoldPlace(account string, h HoldRequest) (*Hold, error) {
	doc := map[string]any{"reason": h.Reason}
	for k, v := range map[string]string{"id": h.ID, "call": h.Call, "number": h.Number} {
		if v != "" {
			doc[k] = v
		}
	}
	// A range needs both bounds, as sb_hold_place and the Python and Lua
	// bindings take it: an unset one (the zero time.Time, year 1, before
	// what the engine takes) is left out, and the engine names it ("a time
	// range hold needs \"to_ms\" too"), rather than made up here.
	if !h.From.IsZero() {
		doc["from_ms"] = h.From.UnixMilli()
	}
	if !h.To.IsZero() {
		doc["to_ms"] = h.To.UnixMilli()
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, &Error{Code: ErrInvalid, Message: "cannot encode the hold: " + err.Error()}
	}
	if err := checkStrings("", doc, b); err != nil {
		return nil, err
	}
	var hj holdJSON
	err = e.callInto([]string{"account", account}, &hj, func(res *C.sb_result, s []*C.char) C.int {
		p, n := bytesPtr(b)
		return C.sb_hold_place(e.eng, s[0], p, n, res)
	})
	if err != nil {
		return nil, err
	}
	out := hj.hold()
	return &out, nil
}

// HoldRelease releases a hold; it no longer protects anything, and records
// whose deletion it prevented are reviewed again within a day.
func (e *Engine) HoldRelease(account, holdID string) (*Hold, error) {
	return e.holdByID(account, holdID, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_hold_release(e.eng, s[0], s[1], res)
	})
}

// HoldGet reads one hold of the account by its ID, as HoldList gives it (a
// number hold shows no number): ErrNotFound (field "hold") for an ID the
// account has no hold of, a released one or another account's.
func (e *Engine) HoldGet(account, holdID string) (*Hold, error) {
	return e.holdByID(account, holdID, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_hold_get(e.eng, s[0], s[1], res)
	})
}

// holdByID is HoldRelease and HoldGet: fn, given the account and the hold's
// ID as C strings, answers with one hold.
func (e *Engine) holdByID(account, holdID string, fn func(*C.sb_result, []*C.char) C.int) (*Hold, error) {
	var hj holdJSON
	if err := e.callInto([]string{"account", account, "hold_id", holdID}, &hj, fn); err != nil {
		return nil, err
	}
	out := hj.hold()
	return &out, nil
}

// HoldList lists the account's holds.
func (e *Engine) HoldList(account string) ([]Hold, error) {
	var doc struct {
		Holds []holdJSON `json:"holds"`
	}
	err := e.callInto([]string{"account", account}, &doc, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_hold_list(e.eng, s[0], res)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Hold, len(doc.Holds))
	for i, h := range doc.Holds {
		out[i] = h.hold()
	}
	return out, nil
}

// AggregateDay is one day's figures for the account (Queue "") or a queue,
// of the calls offered that day on the wall clock of Timezone: the
// account's "timezone" when the figures were added ("UTC" without one; a
// day the account's zone changed may have a row in each). The account's row counts each call
// once, answered if it ever was; a queue's row counts each call that came
// to it, with its outcome, wait and talk there (answered if answered there,
// overflowed if it left unanswered). Failed counts the calls the system
// ended before an answer (a Hangup or Abandon By BySystem). See
// sb_aggregates in switchboard.h.
type AggregateDay struct {
	Day                                                string // "2026-01-05"
	Queue                                              string // "" for the account's row
	Offered, Answered, Abandoned, Rejected, Overflowed int
	Failed, AnsweredWithinSL                           int
	WaitTotal, AnswerWaitTotal, TalkTotal, MaxWait     time.Duration
	// ServiceLevel is AnsweredWithinSL / Offered; nil when the engine gives
	// null, a row without a call offered (Python's None, Lua's sb.null),
	// which 0 (no call answered in time) is not.
	ServiceLevel *float64
	// QueueDeleted: the row is a deleted queue's (Queue is the id it had;
	// a queue made again with that id has rows of its own).
	QueueDeleted bool
	Timezone     string // "America/New_York", "UTC"
}

type aggrJSON struct {
	Day              string   `json:"day"`
	Timezone         string   `json:"timezone"`
	Queue            *string  `json:"queue"`
	QueueDeleted     bool     `json:"queue_deleted"`
	Offered          int      `json:"offered"`
	Answered         int      `json:"answered"`
	Abandoned        int      `json:"abandoned"`
	Rejected         int      `json:"rejected"`
	Overflowed       int      `json:"overflowed"`
	Failed           int      `json:"failed"`
	WaitTotal        float64  `json:"wait_total"`
	AnswerWaitTotal  float64  `json:"answer_wait_total"`
	TalkTotal        float64  `json:"talk_total"`
	MaxWait          float64  `json:"max_wait"`
	AnsweredWithinSL int      `json:"answered_within_sl"`
	ServiceLevel     *float64 `json:"service_level"` // null: no call offered
}

// Aggregates returns the daily aggregates of every whole day (each row's,
// in its Timezone) that [from, to) touches (both zero: all), for one queue or (queue "") the
// account and each of its queues. Deleting records never changes them.
func (e *Engine) Aggregates(account, queue string, from, to time.Time) ([]AggregateDay, error) {
	var fromMs, toMs int64
	if !from.IsZero() {
		fromMs = from.UnixMilli()
	}
	if !to.IsZero() {
		toMs = to.UnixMilli()
	}
	var doc struct {
		Days []aggrJSON `json:"days"`
	}
	err := e.callInto([]string{"account", account, "queue", queue}, &doc, func(res *C.sb_result, s []*C.char) C.int {
		q := s[1]
		if queue == "" {
			q = nil
		}
		return C.sb_aggregates(e.eng, s[0], q, C.int64_t(fromMs), C.int64_t(toMs), res)
	})
	if err != nil {
		return nil, err
	}
	return aggregateDays(doc.Days), nil
}

// aggregateDays turns the engine's rows into AggregateDays.
func aggregateDays(days []aggrJSON) []AggregateDay {
	out := make([]AggregateDay, len(days))
	for i, d := range days {
		out[i] = AggregateDay{Day: d.Day, Offered: d.Offered, Answered: d.Answered,
			Abandoned: d.Abandoned, Rejected: d.Rejected, Overflowed: d.Overflowed, Failed: d.Failed,
			AnsweredWithinSL: d.AnsweredWithinSL, WaitTotal: seconds(d.WaitTotal),
			AnswerWaitTotal: seconds(d.AnswerWaitTotal), TalkTotal: seconds(d.TalkTotal),
			MaxWait: seconds(d.MaxWait), ServiceLevel: d.ServiceLevel, QueueDeleted: d.QueueDeleted,
			Timezone: d.Timezone}
		if d.Queue != nil {
			out[i].Queue = *d.Queue
		}
	}
	return out
}

// AuditEntry is one entry of an account's audit log (retention decisions,
// erasure and access requests, legal holds); it holds no personal data.
type AuditEntry struct {
	Seq        uint64
	Time       time.Time
	Call       string
	Ended      time.Time // when the call ended (zero for entries of no call: holds, requests)
	Action     string    // "delete", "anonymize", "keep", "error", "erasure_request", "hold_placed", "hold_released", "account_delete_held", "access_request"
	Decision   string    // what the policy decided (Overridden: a hold kept the record)
	Overridden bool
	Reason     string
	Source     string // "write", "review", "erasure", "hold" or "access"
	Policy     string
	Version    string
}

// AuditList returns the account's audit log, oldest first: the entries after
// sequence number after (0: from the start), at most limit (0: 1000). next is
// the after of the following page.
func (e *Engine) AuditList(account string, after uint64, limit int) (entries []AuditEntry, next uint64, err error) {
	var doc struct {
		Entries []struct {
			Seq        uint64 `json:"seq"`
			T          int64  `json:"t_ms"`
			Call       string `json:"call"`
			Ended      int64  `json:"ended_ms"`
			Action     string `json:"action"`
			Decision   string `json:"decision"`
			Overridden bool   `json:"overridden"`
			Reason     string `json:"reason"`
			Source     string `json:"source"`
			Policy     string `json:"policy"`
			Version    string `json:"version"`
		} `json:"entries"`
		Next uint64 `json:"next"`
	}
	if limit < 0 {
		return nil, 0, &Error{Code: ErrInvalid, Field: "limit",
			Message: fmt.Sprintf("limit must be 0 (the default, 1000) or more, not %d", limit)}
	}
	err = e.callInto([]string{"account", account}, &doc, func(res *C.sb_result, s []*C.char) C.int {
		return C.sb_audit_list(e.eng, s[0], C.uint64_t(after), C.size_t(limit), res)
	})
	if err != nil {
		return nil, 0, err
	}
	entries = make([]AuditEntry, len(doc.Entries))
	for i, x := range doc.Entries {
		entries[i] = AuditEntry{Seq: x.Seq, Time: msTime(x.T), Call: x.Call, Ended: msTime(x.Ended),
			Action: x.Action, Decision: x.Decision, Overridden: x.Overridden, Reason: x.Reason,
			Source: x.Source, Policy: x.Policy, Version: x.Version}
	}
	return entries, doc.Next, nil
}

// AuditPages walks the account's audit log, oldest first, from the entry
// after sequence number after (0: from the start), a page of at most limit
// entries at a time (0: 1000): AuditList page after page, until no entry is
// left. The refusals of AuditList (a negative limit, an unknown account) are
// Err after the first Next. See Pages.
func (e *Engine) AuditPages(account string, after uint64, limit int) *Pages[AuditEntry] {
	return &Pages[AuditEntry]{read: func() ([]AuditEntry, bool, error) {
		page, next, err := e.AuditList(account, after, limit)
		after = next
		return page, len(page) == 0, err
	}}
}

// SweepCounts are a sweep's counts of records.
type SweepCounts struct {
	Reviewed   int `json:"reviewed"`
	Kept       int `json:"kept"`
	Anonymized int `json:"anonymized"`
	Deleted    int `json:"deleted"`
	Overridden int `json:"overridden"`
	Failed     int `json:"failed"`
	Purged     int `json:"purged"`
	// Erased: records reached by erasure requests run again because a legal
	// hold that kept them was released (their decisions are counted too).
	Erased int `json:"erased"`
	// AuditExpired: audit log entries past their account's audit_days,
	// removed.
	AuditExpired int `json:"audit_expired"`
}

// SweepReport is the outcome of a sweep. Resumed: an interrupted sweep was
// carried on, and the counts include its work (a sweep run is shared: one
// started beside another carries on the same run). ThisCall counts the work
// of this call alone.
type SweepReport struct {
	SweepCounts      // the run's counts
	Transactions int `json:"transactions"`
	// Yields: the times it ended a transaction early and waited for events.
	Yields   int           `json:"yields"`
	Duration time.Duration `json:"-"` // how long it took
	Done     bool          `json:"done"`
	Resumed  bool          `json:"resumed"`
	ThisCall SweepCounts   `json:"this_call"`
}

// sweepProgress carries a Sweep's progress function through the engine
// (callbacks.go). A panic cannot unwind through the engine's C frames: it is
// kept, the function is not called again, and Sweep panics with it once the
// engine has returned.
type sweepProgress struct {
	fn       func(done, total uint64)
	panicked bool
	value    any
}

func (p *sweepProgress) call(done, total uint64) {
	if p.panicked {
		return
	}
	p.panicked, p.value = protect(func() { p.fn(done, total) })
}

// Sweep runs a retention sweep: reviews every record whose review date has
// come, purges the records of deleted accounts, queues reviews after a
// retention policy changed. It stops after about budget (zero: when nothing
// is due; negative: ErrInvalid). progress, if not nil, is called on this
// goroutine after each transaction with the records handled so far and an
// estimate of the total; it may call the engine (while a Close on another
// goroutine waits for the sweep, such calls fail with ErrInvalid), but not
// close it (Close returns ErrState). A panic in progress (of any value, nil
// too) panics Sweep with it once the sweep has returned (the sweep itself
// cannot be stopped half way: its work is committed transaction by
// transaction); runtime.Goexit in it (t.Fatal...) ends the process, as in
// Config.Clock.
func (e *Engine) Sweep(budget time.Duration, progress func(done, total uint64)) (*SweepReport, error) {
	if budget < 0 {
		// Not "no budget": a budget computed from a deadline already past
		// must not sweep until nothing is due.
		return nil, &Error{Code: ErrInvalid, Field: "budget",
			Message: fmt.Sprintf("budget must be 0 (none) or more, not %v", budget)}
	}
	ms := budget.Milliseconds()
	if budget > 0 && ms < 1 {
		ms = 1
	}
	if ms > math.MaxUint32 {
		ms = math.MaxUint32
	}
	var p *sweepProgress
	var h cgo.Handle
	if progress != nil {
		p = &sweepProgress{fn: progress}
		h = cgo.NewHandle(p)
		defer h.Delete()
	}
	var r struct {
		SweepReport
		Seconds float64 `json:"seconds"`
	}
	err := e.callInto(nil, &r, func(res *C.sb_result, _ []*C.char) C.int {
		return C.sbgo_sweep(e.eng, C.uint32_t(ms), C.uintptr_t(h), res)
	})
	if p != nil && p.panicked {
		panic(p.value)
	}
	if err != nil {
		return nil, err
	}
	r.Duration = seconds(r.Seconds)
	return &r.SweepReport, nil
}

// RetentionPreviewOptions are a retention dry run's options
// (sb_retention_preview in switchboard.h).
type RetentionPreviewOptions struct {
	At     time.Time     // the sweep's time (zero: now, or InDays from now)
	InDays int           // days from now (not with At)
	Policy string        // a stored policy to preview instead of the account's retention
	Source string        // a Lua source, not stored, previewed under Policy
	Scope  string        // "due", "all" or "" (due, or all with Policy or Source)
	Sample int           // record ids shown per count (0: 10; -1: none)
	Budget time.Duration // stop after about this long (0: none), with Next to carry on
	Next   string        // carry on where the answer that gave it stopped (with its At)
}

// RetentionPreview is what a retention sweep would do to an account's
// records, none of it done. Kept includes Overridden and Failed; Reasons
// counts the decisions by "action: reason"; Samples holds a few ids of each
// ("kept", "anonymized", "deleted", "overridden", "failed"). Done is false
// when Budget cut it short: pass Next and At to carry on, and add the counts.
type RetentionPreview struct {
	Policy, Version, Source, Scope                  string
	At                                              time.Time
	Reviewed, Kept, Anonymized, Deleted, Overridden int
	Failed                                          int
	Reasons                                         map[string]int
	Samples                                         map[string][]string
	Done                                            bool
	Next                                            string
}

// RetentionPreview runs the account's retention hook (or opts.Policy, or
// opts.Source) over its records as a sweep at opts.At would, writing nothing.
func (e *Engine) RetentionPreview(account string, opts RetentionPreviewOptions) (*RetentionPreview, error) {
	doc := map[string]any{}
	if !opts.At.IsZero() {
		doc["now_ms"] = opts.At.UnixMilli()
	}
	if opts.InDays != 0 {
		doc["in_days"] = opts.InDays
	}
	for k, v := range map[string]string{"policy": opts.Policy, "source": opts.Source,
		"scope": opts.Scope, "next": opts.Next} {
		if v != "" {
			doc[k] = v
		}
	}
	if opts.Sample > 0 {
		doc["sample"] = opts.Sample
	} else if opts.Sample < 0 {
		doc["sample"] = 0
	}
	if opts.Budget < 0 {
		return nil, &Error{Code: ErrInvalid, Field: "budget_ms",
			Message: fmt.Sprintf("Budget must be 0 (none) or more, not %v", opts.Budget)}
	}
	if ms := opts.Budget.Milliseconds(); opts.Budget > 0 && ms < 1 {
		doc["budget_ms"] = 1
	} else if opts.Budget > 0 {
		doc["budget_ms"] = ms
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, &Error{Code: ErrInvalid, Message: "cannot encode the options: " + err.Error()}
	}
	if err := checkStrings("", doc, b); err != nil {
		return nil, err
	}
	var r struct {
		RetentionPreview
		Policy  *string `json:"policy"`
		Version *string `json:"version"`
		NowMs   int64   `json:"now_ms"`
	}
	err = e.callInto([]string{"account", account}, &r, func(res *C.sb_result, s []*C.char) C.int {
		p, n := bytesPtr(b)
		return C.sb_retention_preview(e.eng, s[0], p, n, res)
	})
	if err != nil {
		return nil, err
	}
	if r.Policy != nil {
		r.RetentionPreview.Policy = *r.Policy
	}
	if r.Version != nil {
		r.RetentionPreview.Version = *r.Version
	}
	r.At = time.UnixMilli(r.NowMs)
	return &r.RetentionPreview, nil
}
