-- examples/kamailio/route.lua — Kamailio KEMI routing (app_lua) that asks
-- Switchboard which agent gets each call and relays the INVITE there.
--
-- An INVITE to sip:QUEUE@proxy is offered to the engine as a call of queue
-- QUEUE (caller: the From user, E.164, or none when it is not a number, as
-- "anonymous" from a caller who withholds it; attributes: X-Language);
-- the engine asks the queue's Lua 5.4 policy and answers with the agent to
-- ring and that agent's device URI, which becomes the request URI. Replies
-- report back: 200 -> answered; 486/600 -> busy; 603/403 -> rejected; a timeout
-- or anything else -> no answer, after which the engine decides again and
-- the INVITE moves on to the next agent from the failure route. A BYE in
-- either direction ends the call; a CANCEL abandons it. Every Kamailio worker
-- opens its own engine on the same data directory (LMDB serialises them), so
-- a reply may well be reported by another process than the one that routed
-- the INVITE.
--
-- Settings come from the environment of the kamailio process:
--   SWITCHBOARD_DATA_DIR    the engine's data directory (/var/lib/switchboard)
--   SWITCHBOARD_POLICY_DIR  shared policies (/etc/switchboard/policies)
--   SWITCHBOARD_ACCOUNT     the account whose queues these are (default "acme")
--   SWITCHBOARD_SYNC        group (default), sync or none
--   LUA_CPATH               where switchboard.so (the Lua 5.1 build) is, unless
--                           it is installed in the default Lua 5.1 C path
--
-- Kept simple on purpose: calls the engine says must wait are turned away
-- with 486 (a queue with music on hold would park them on a media server and
-- ring the agent when a later event's actions say so).

local sb = require "switchboard"

local DATA_DIR = os.getenv("SWITCHBOARD_DATA_DIR") or "/var/lib/switchboard"
local POLICY_DIR = os.getenv("SWITCHBOARD_POLICY_DIR") or "/etc/switchboard/policies"
local ACCOUNT = os.getenv("SWITCHBOARD_ACCOUNT") or "acme"
local SYNC = os.getenv("SWITCHBOARD_SYNC") or "group"

-- One engine per Kamailio process, opened on first use: an LMDB environment
-- must never cross a fork, and app_lua may run this file before forking.
local eng, eng_pid
local function engine()
  local pid = KSR.pv.get("$pp")
  if eng and eng_pid == pid then return eng end
  local e, err = sb.open{ data_dir = DATA_DIR, policy_dir = POLICY_DIR, sync = SYNC,
                          log = "stderr", log_level = "warn" }
  if not e then
    KSR.err("switchboard: cannot open " .. DATA_DIR .. ": " .. tostring(err) .. "\n")
    return nil
  end
  eng, eng_pid = e, pid -- an engine inherited from a parent is left alone
  return eng
end

local function log_fail(what, msg, code)
  KSR.warn(string.format("switchboard: %s: %s (%s)\n", what, tostring(msg), tostring(code)))
end

-- The engine's call id: the SIP Call-ID when it fits the identifier rules,
-- else its MD5 (both sides of a dialog compute the same).
local function call_id()
  local ci = KSR.pv.get("$ci") or ""
  if #ci <= 128 and ci:match("^[%w%.%_:@%+%-]+$") then return ci end
  return "md5:" .. KSR.pv.get("$(ci{s.md5})")
end

-- E.164 from the From user: "+4420..." as is, "0044..." to "+44...".
local function e164(user)
  if not user then return nil end
  user = user:gsub("[%s%-%.%(%)]", "")
  if user:match("^00%d") then user = "+" .. user:sub(3) end
  if user:match("^%+[1-9]%d%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?$") then return user end
  return nil
end

-- Agents rung for this transaction, in branch order, kept in an AVP: replies
-- and failures may be handled by any worker, and the AVP travels with the
-- transaction in shared memory.
local function rung_agents()
  local list = KSR.pv.get("$avp(sb_rung)") or ""
  local out = {}
  for a in list:gmatch("[^,]+") do out[#out + 1] = a end
  return out
end

-- Ring what the engine decided; true when the INVITE went out.
local function ring(e, call, actions, in_failure)
  local rings = {}
  for _, a in ipairs(actions) do
    if a.call == call and a.type == "ring" then rings[#rings + 1] = a
    elseif a.call == call and a.type == "reject" then
      KSR.tm.t_send_reply(603, "Decline")
      return false
    end
  end
  if #rings == 0 then
    -- Nobody free now (wait / overflow): this example does not park callers.
    e:submit(ACCOUNT, { type = "abandon", call = call })
    if in_failure then KSR.tm.t_send_reply(486, "Busy Here") else KSR.sl.sl_send_reply(486, "Busy Here") end
    return false
  end
  local rung = rung_agents()
  for i, a in ipairs(rings) do
    if i == 1 then KSR.pv.sets("$ru", a.uri)
    else KSR.corex.append_branch_uri(a.uri) end
    rung[#rung + 1] = a.agent
  end
  KSR.pv.sets("$avp(sb_rung)", table.concat(rung, ","))
  -- SIP gives up half a second before the engine's own ring timer, so the
  -- failure route always reports the no-answer first.
  local t = rings[1].timeout or 20
  KSR.tm.t_set_fr(t * 1000 - 500, 2000)
  KSR.tm.t_on_reply("ksr_switchboard_reply")
  KSR.tm.t_on_failure("ksr_switchboard_failure")
  if KSR.tm.t_relay() < 0 then
    KSR.sl.sl_reply_error()
    return false
  end
  return true
end

local function new_invite()
  local e = engine()
  if not e then KSR.sl.sl_send_reply(500, "Routing Engine Unavailable") return end
  local call = call_id()
  -- A From user that is no E.164 number ("anonymous", as a caller who
  -- withholds the number sends) leaves the caller out: a withheld number.
  local caller = e164(KSR.pv.get("$fU"))
  local queue = KSR.pv.get("$rU")
  if not queue then KSR.sl.sl_send_reply(484, "Address Incomplete") return end
  local attrs = {}
  local lang = KSR.pv.get("$hdr(X-Language)")
  if lang then attrs.language = lang end
  local acts, msg, code, _, stood = e:submit(ACCOUNT, { type = "offer", call = call,
                                                         queue = queue, caller = caller,
                                                         attrs = attrs })
  if not acts and stood and #stood > 0 then
    -- Committed, only its sync failed (a failing disk): the call is in the
    -- engine and its agents are reserved, so it is routed all the same.
    log_fail("offer " .. call .. " (routed: only the sync failed)", msg, code)
    acts = stood
  end
  if not acts then
    log_fail("offer " .. call, msg, code)
    if code == sb.ENOTFOUND then KSR.sl.sl_send_reply(404, "No Such Queue")
    elseif code == sb.EEXIST then KSR.sl.sl_send_reply(482, "Loop Detected")
    else KSR.sl.sl_send_reply(500, "Routing Failed") end
    return
  end
  KSR.rr.record_route()
  KSR.hdr.append("X-Switchboard-Call: " .. call .. "\r\n") -- the agents' side sees the engine's id
  ring(e, call, acts, false)
end

-- Requests inside a dialog follow the Record-Route; a BYE ends the call.
local function in_dialog()
  if KSR.rr.loose_route() > 0 then
    local e = KSR.is_BYE() and engine()
    if e then
      local ok, msg, code = e:submit(ACCOUNT, { type = "hangup", call = call_id() })
      if not ok and code ~= sb.ENOTFOUND then log_fail("hangup", msg, code) end
    end
    if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
    return
  end
  if KSR.is_ACK() then
    if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
    return
  end
  KSR.sl.sl_send_reply(404, "Not Here")
end

function ksr_request_route()
  if KSR.maxfwd.process_maxfwd(10) < 0 then
    KSR.sl.sl_send_reply(483, "Too Many Hops")
    return 1
  end
  if KSR.is_CANCEL() then
    if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
    return 1
  end
  if not KSR.is_ACK() then
    if KSR.tmx.t_precheck_trans() > 0 then
      KSR.tm.t_check_trans()
      return 1
    end
    if KSR.tm.t_check_trans() == 0 then return 1 end
  end
  if KSR.siputils.has_totag() > 0 then
    in_dialog()
    return 1
  end
  if KSR.is_ACK() then return 1 end -- a stray ACK
  if not KSR.is_INVITE() then
    KSR.sl.sl_send_reply(405, "Method Not Allowed")
    return 1
  end
  new_invite()
  return 1
end

-- A 2xx from a branch: that branch's agent answered.
function ksr_switchboard_reply()
  local status = tonumber(KSR.pv.get("$rs")) or 0
  if status < 200 or status >= 300 then return 1 end
  local e = engine()
  local idx = tonumber(KSR.pv.get("$T_branch_idx")) or 0
  local agent = rung_agents()[idx + 1]
  if not (e and agent) then return 1 end
  local ok, msg, code = e:submit(ACCOUNT, { type = "ring_result", call = call_id(), agent = agent,
                                            outcome = "answered" })
  -- a retransmitted 200 finds the call connected already (SB_ESTATE)
  if not ok and code ~= sb.ESTATE then log_fail("answered " .. agent, msg, code) end
  return 1
end

local function outcome_of(code)
  if code == 486 or code == 600 then return "busy" end
  if code == 603 or code == 403 then return "rejected" end
  return "no_answer"
end

-- Every branch failed: report each agent still ringing, then ring whoever
-- the engine picks next, or give the caller the final answer.
function ksr_switchboard_failure()
  local e = engine()
  if not e then return 1 end
  local call = call_id()
  if KSR.tm.t_is_canceled() > 0 then
    e:submit(ACCOUNT, { type = "abandon", call = call })
    return 1
  end
  local outcome = outcome_of(tonumber(KSR.pv.get("$T_reply_code")) or 408)
  local rec = e:call_get(ACCOUNT, call)
  local actions = {}
  for _, r in ipairs(rec and rec.ringing or {}) do
    local acts, msg, code = e:submit(ACCOUNT, { type = "ring_result", call = call, agent = r.agent,
                                                outcome = outcome })
    if acts then
      for _, a in ipairs(acts) do actions[#actions + 1] = a end
    else
      log_fail(outcome .. " " .. r.agent, msg, code)
    end
  end
  ring(e, call, actions, true)
  return 1
end

-- rtimer, every second: the engine's timers (wrap-up ends, re-decisions).
-- Ring actions for calls this example turned away do not arise; others are
-- logged for a real deployment to act on.
function ksr_switchboard_tick()
  local e = engine()
  if not e then return 1 end
  local acts, msg, code = e:tick()
  if not acts then log_fail("tick", msg, code) return 1 end
  for _, a in ipairs(acts) do
    if a.type == "ring" then KSR.info("switchboard: tick rings " .. a.agent .. " for " .. a.call .. "\n") end
  end
  return 1
end
