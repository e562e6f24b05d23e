-- examples/kamailio/sbctl.lua — provision Switchboard and read its call
-- records through the Lua binding, from any Lua with the module on LUA_CPATH
-- (luajit, lua5.1 or lua5.4):
--
--   luajit sbctl.lua DATA_DIR POLICY_DIR provision contact-centre.json
--   luajit sbctl.lua DATA_DIR POLICY_DIR calls ACCOUNT CALL_ID...   (one JSON line each)
--   luajit sbctl.lua DATA_DIR POLICY_DIR agents ACCOUNT             (one JSON line each)
--   luajit sbctl.lua DATA_DIR POLICY_DIR status ACCOUNT AGENT available|paused|offline
--
-- The provisioning file holds {"account": {...}, "agents": [...], "queues": [...]},
-- documents as switchboard.h describes them ("agents" and "queues" arrays of
-- objects, or left out: anything else is refused before anything is made).
-- Exits 0 when every request succeeded, 1 with a message on stderr when the
-- file is not of that shape or the engine refused one, 2 on a usage error.
-- `calls` prints a line for every id, a refused one as
-- {"id":...,"error":...,"code":...}, and then exits 1 if any was refused.
local sb = require "switchboard"

local data_dir, policy_dir, cmd = arg[1], arg[2], arg[3]
-- the number of arguments each command needs after DATA_DIR POLICY_DIR CMD (at least)
local nargs = { provision = 1, calls = 2, agents = 1, status = 3 }
if not (data_dir and policy_dir and cmd and nargs[cmd] and #arg >= 3 + nargs[cmd]) then
  io.stderr:write("usage: sbctl.lua DATA_DIR POLICY_DIR provision FILE | calls ACCOUNT ID... |\n" ..
                  "       agents ACCOUNT | status ACCOUNT AGENT available|paused|offline\n")
  os.exit(2)
end

local function die(what, msg, code)
  io.stderr:write(string.format("sbctl: %s: %s%s\n", what, tostring(msg),
                                code and " (" .. tostring(code) .. ")" or ""))
  os.exit(1)
end

local eng, err, ecode = sb.open{ data_dir = data_dir, policy_dir = policy_dir, log = "stderr",
                                 log_level = "warn" }
if not eng then die("open " .. data_dir, err, ecode) end

if cmd == "provision" then
  local f, ferr = io.open(arg[4], "rb")
  if not f then die("provision", ferr) end
  local doc, derr = sb.json_decode(f:read("*a"))
  f:close()
  if not doc then die(arg[4], derr) end
  if type(doc) ~= "table" or type(doc.account) ~= "table" then
    die(arg[4], "no \"account\" object")
  end
  -- "agents" and "queues", when given, are arrays of objects: anything else
  -- is refused before anything is provisioned (an object would otherwise
  -- read as an empty list, and "0 agents" would pass for success).
  local array = getmetatable(sb.array{})
  for _, key in ipairs{ "agents", "queues" } do
    local list = doc[key]
    if list ~= nil then
      local bad = getmetatable(list) ~= array
      for _, d in ipairs(bad and {} or list) do bad = bad or type(d) ~= "table" end
      if bad then die(arg[4], string.format("%q must be an array of %s objects", key, key:sub(1, -2))) end
    end
  end
  local acct = doc.account.id
  local ok, msg, code = eng:account_put(doc.account)
  if not ok then die(acct ~= nil and "account " .. tostring(acct) or "account", msg, code) end
  for _, a in ipairs(doc.agents or {}) do
    ok, msg, code = eng:agent_put(acct, a)
    if not ok then die("agent " .. tostring(a.id), msg, code) end
  end
  for _, q in ipairs(doc.queues or {}) do
    ok, msg, code = eng:queue_put(acct, q)
    if not ok then die("queue " .. tostring(q.id), msg, code) end
  end
  local na, nq = #(doc.agents or {}), #(doc.queues or {})
  print(string.format("provisioned account %s: %d agent%s, %d queue%s", acct, na,
                      na == 1 and "" or "s", nq, nq == 1 and "" or "s"))
elseif cmd == "calls" then
  local refused = 0
  for i = 5, #arg do
    local rec, msg, code = eng:call_get(arg[4], arg[i])
    if not rec then
      rec = { id = arg[i], error = msg, code = code }
      refused = refused + 1
    end
    print(sb.json_encode(rec))
  end
  if refused > 0 then
    eng:close()
    die("calls", string.format("%d of %d not read", refused, #arg - 4))
  end
elseif cmd == "agents" then
  local list, msg, code = eng:agent_list(arg[4])
  if not list then die("agents", msg, code) end
  for _, a in ipairs(list.agents) do print(sb.json_encode(a)) end
elseif cmd == "status" then
  local acts, msg, code = eng:submit(arg[4], { type = "agent_status", agent = arg[5], status = arg[6] })
  if not acts then die("status " .. tostring(arg[5]), msg, code) end
  for _, a in ipairs(acts) do print(sb.json_encode(a)) end
end
eng:close()
