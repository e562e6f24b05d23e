---@meta
-- Type annotations for Switchboard policies, for the Lua language server
-- (LuaLS / sumneko). This file only describes the contract in
-- policies/README.md so that editors can complete and check policy code; it
-- is not a policy and never runs. policies/.luarc.json puts it on the
-- language server's library path; to use it elsewhere, add this folder to
-- "workspace.library" in your own .luarc.json.
--
-- In a policy, annotate the hook table and the hooks' parameters follow:
--
--   ---@type Policy
--   local P = {}
--   function P.route(call, agents, ctx) ... end   -- call: Call, agents: AgentView[] ...
--   return P

---@alias DeviceName "landline"|"mobile"|"softphone"

---The call being routed (read-only).
---@class Call
---@field id string the gateway's call id
---@field queue string the queue it waits in
---@field caller string? E.164 number of the caller, or nil when the caller withheld it
---@field called string? E.164 number dialled, or nil
---@field priority integer 0..100, higher first
---@field waited number seconds since the call was offered
---@field queue_waited number seconds since it entered this queue
---@field attempts integer rings tried so far for this call
---@field tried table<string, integer> agent id -> times rung for this call
---@field last_agent string? agent of the previous ring attempt
---@field previous_agent string? agent this caller last spoke to in 90 days (nil: none, or withheld)
---@field since_last_ring number? seconds since this call's last ring attempt ended (nil: none has)
---@field attrs table<string, any> attributes from the gateway (copied each read)
---@field skills table<string, integer> `attrs.skills`: skill -> minimum level, or empty

---An available member of the call's queue (read-only; valid for this call only).
---@class AgentView
---@field id string
---@field name string
---@field status "available" always "available" in route
---@field idle_for number seconds since the agent last became free
---@field idle_since number Unix seconds
---@field calls_taken integer answered calls
---@field talk_time number seconds on calls
---@field no_answers integer rings in a row that ran to their end unanswered (not busy or rejected)
---@field last_call number? Unix seconds of the last call's end, nil if never
---@field missed_for number? seconds since the agent's last ring it did not answer (no answer, busy,
---rejected or timed out; on any call) ended, nil before the first
---@field weight number the agent's weight
---@field tier integer the membership's tier/level (lower first)
---@field position integer the membership's position in the queue
---@field member_weight number the membership's weight
---@field penalty integer the membership's penalty
---@field skills table<string, integer> skill -> level (a new table each read)
---@field devices table<DeviceName, string> device name -> dial URI
---@field preferences table<string, any> the agent's free-form preferences
---@field timezone string IANA zone of the schedule ("UTC" when it has none)
---@field on_schedule boolean inside a schedule window now (true when no schedule)
---@field devices_now DeviceName[] the agent's devices the schedule allows now (a new table)

---The live figures of the call's queue (`ctx.queue`).
---@class QueueFigures
---@field id string
---@field waiting integer calls waiting in the queue
---@field longest_wait number seconds the longest-waiting call has waited in this queue
---@field members integer members of the queue
---@field available integer members available now
---@field position integer this call's place in the queue (1 = next)
---@field logged_in integer members not offline (free, ringing, on a call, in wrap-up or paused)
---@field paused integer members paused (logged_in - paused: who can take calls)

---What a hook may use besides its arguments.
---@class Ctx
---@field now number Unix time in seconds (float, from the engine's clock)
---@field queue QueueFigures route only (retain and erase have no queue)
local Ctx = {} -- luacheck: ignore 241 (methods are declared, never called here)

---Like math.random, seeded by the engine seed, the call id and the attempt
---(in retain and erase: the record id): the same inputs give the same numbers.
---`random()` gives a float in [0,1), `random(n)` an integer in [1,n], `random(m, n)`
---an integer in [m,n].
---@param m? integer
---@param n? integer
---@return number
function Ctx.random(m, n) end

---Read the policy's own key-value store (per account). In retain and erase
---there is no store: it gives nil.
---@param key string at most 64 bytes
---@return string|number|boolean|nil
function Ctx.get(key) end

---Write the policy's key-value store; nil deletes. Kept in LMDB with the event,
---and only if the hook returns a valid decision. In retain and erase writes are
---dropped.
---@param key string at most 64 bytes
---@param value string|number|boolean|nil strings at most 1 KiB
function Ctx.set(key, value) end

---A log line tagged with account and policy (at most 32 lines per call).
---@param ... any
function Ctx.log(...) end

---One agent to ring with its own device.
---@class RingTarget
---@field agent string|AgentView agent id, or the agent's view
---@field device DeviceName?

---An agent to pause: any agent of the account (not only those in `agents`);
---one that does not exist, or is not available or in wrap-up, stays as it is.
---@class Pause
---@field agent string|AgentView agent id, or the agent's view
---@field reason string? at most 128 bytes

---What route returns. Set one of ring, wait, move or reject (`{}` waits);
---pause may go with any of them. Anything else is an invalid decision.
---@class Decision
---@field ring (string|AgentView|(string|AgentView|RingTarget)[])? one agent, or several
---(at most 32)
---@field mode ("all"|"sequence"|"progressive")? "all" (the default) rings several at once,
---"sequence" one after another, "progressive" adds one every `step` seconds while the
---earlier ones ring on
---@field step integer? with mode "progressive" (and only then, where it is needed):
---seconds before the next agent joins, 1..600
---@field device DeviceName? device for every agent rung (default: see README)
---@field timeout integer? ring seconds, 1..600 (default: the queue's ring_timeout); for a
---progressive ring, the whole ring's, from its start
---@field wait integer? keep waiting; decide again within this many seconds (0..3600)
---or as soon as an agent frees up; 0 (like `{}`) sets no timer: the call waits until an
---agent of its queue frees up
---@field move string? move the call to this queue of the account
---@field reason string? why, with move
---@field reject string? reject the call with this reason
---@field pause (Pause|Pause[])? pause agents (at most 8)

---One ring attempt of a finished call.
---@class RingAttempt
---@field agent string agent id
---@field device DeviceName
---@field outcome "answered"|"no_answer"|"busy"|"rejected"|"cancelled"
---@field start number Unix seconds
---@field duration number seconds it rang

---A routing policy version that decided about the call.
---@class DecidedBy
---@field policy string
---@field version string

---A finished call's record, as retain and erase see it (read-only). It never
---holds personal data: no numbers, no attributes the account marks personal.
---@class Record
---@field id string the gateway's call id
---@field queue string the queue it ended in
---@field first_queue string the queue it was offered to
---@field outcome "answered"|"abandoned"|"failed"|"rejected" an overflowed call ends in one of these
---@field agent string? the agent who answered
---@field reason string? why a rejected call was turned away (policy or engine); nil otherwise
---@field ended_by "caller"|"agent"|"system"|nil who ended the call, when its hangup or abandon said
---@field priority integer
---@field offered number Unix seconds
---@field answered number? Unix seconds, nil when nobody answered
---@field ended number Unix seconds
---@field wait number seconds
---@field talk number seconds
---@field age_days integer whole days since the call ended
---@field attrs table<string, any> the gateway's attributes, personal ones removed
---@field attempts RingAttempt[] every ring attempt
---@field decided_by DecidedBy[] the routing policies that decided
---@field anonymized boolean its numbers and personal attributes are gone already
---@field legal_hold boolean a legal hold covers it (delete/anonymize will be overridden)
---@field overridden boolean its last retention decision was overridden by a hold

---An erasure request, as erase sees it.
---@class ErasureRequest
---@field role "caller"|"called" what the number was in this record
---@field received number Unix seconds

---What retain and erase return: at most one of keep, anonymize, delete
---(none: keep); erase must set one, and a review date it gives is checked, then
---ignored. Anything else (false for keep, a number as a string, NaN) is an
---invalid decision: the record is kept as it was and retried a day later.
---@class RetentionDecision
---@field keep true?
---@field anonymize true? drop numbers, personal attributes and pseudonyms, keep the rest
---@field delete true?
---@field review_in_days number? decide again in this many days, (0, 36600]; not with delete
---or keep_until
---@field keep_until number? decide again at this Unix time in seconds (not milliseconds),
---later than now and at most 100 years ahead; not with delete or review_in_days
---@field reason string? at most 128 bytes; lands in the audit log

---What os.date returns: a date and time of day, in UTC or in the zone asked for.
---@class DateTable
---@field year integer
---@field month integer 1..12
---@field day integer 1..31
---@field hour integer 0..23
---@field min integer 0..59
---@field sec integer 0..59
---@field wday integer 1..7, 1 is Sunday
---@field yday integer 1..366
---@field utc_offset integer seconds east of UTC at that time (3600 in Berlin's winter)

---The date of Unix time t (seconds; default: the engine's clock) as a table:
---"!*t" in UTC, "*t" in the IANA zone given (UTC without one), summer time
---included. Only these two formats; an unknown zone is an error.
---os.time(d) - d.utc_offset is t again.
---@param format? "*t"|"!*t"
---@param t? number
---@param zone? string an IANA zone such as "Europe/Berlin", with "*t" only
---@return DateTable
function os.date(format, t, zone) end -- luacheck: ignore 122 (declared for the language server)

---A policy file returns one of these (at least one hook).
---@class Policy
---@field route? fun(call: Call, agents: AgentView[], ctx: Ctx): Decision
---@field retain? fun(record: Record, ctx: Ctx): RetentionDecision
---@field erase? fun(record: Record, request: ErasureRequest, ctx: Ctx): RetentionDecision
