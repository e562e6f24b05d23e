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
-- documents as switchboard.h describes them. Exits 1 with a message on failure.
local sb = require "switchboard"

local data_dir, policy_dir, cmd = arg[1], arg[2], arg[3]
if not (data_dir and policy_dir and cmd) then
  io.stderr:write("usage: sbctl.lua DATA_DIR POLICY_DIR provision FILE | calls ACCOUNT ID... |\n" ..
                  "       agents ACCOUNT | status ACCOUNT AGENT STATUS\n")
  os.exit(2)
end

local function die(what, msg, code)
  io.stderr:write(string.format("sbctl: %s: %s (%s)\n", what, tostring(msg), tostring(code)))
  os.exit(1)
end

local eng, err = sb.open{ data_dir = data_dir, policy_dir = policy_dir, log = "stderr", log_level = "warn" }
if not eng then die("open " .. data_dir, err) end

if cmd == "provision" then
  local f = assert(io.open(assert(arg[4], "provision needs a file"), "rb"))
  local doc, derr = sb.json_decode(f:read("*a"))
  f:close()
  if not doc then die(arg[4], derr) end
  local acct = doc.account.id
  local ok, msg, code = eng:account_put(doc.account)
  if not ok then die("account " .. acct, msg, code) end
  for _, a in ipairs(doc.agents or {}) do
    ok, msg, code = eng:agent_put(acct, a)
    if not ok then die("agent " .. tostring(a.id), msg, code) end
  end
  for _, q in ipairs(doc.queues or {}) do
    ok, msg, code = eng:queue_put(acct, q)
    if not ok then die("queue " .. tostring(q.id), msg, code) end
  end
  print(string.format("provisioned account %s: %d agents, %d queues", acct, #(doc.agents or {}),
                      #(doc.queues or {})))
elseif cmd == "calls" then
  for i = 5, #arg do
    local rec, msg, code = eng:call_get(arg[4], arg[i])
    if not rec then rec = { id = arg[i], error = msg, code = code } end
    print(sb.json_encode(rec))
  end
elseif cmd == "agents" then
  local list, msg, code = eng:agent_list(arg[4])
  if not list then die("agents", msg, code) end
  for _, a in ipairs(list.agents) do print(sb.json_encode(a)) end
elseif cmd == "status" then
  local acts, msg, code = eng:submit(arg[4], { type = "agent_status", agent = arg[5], status = arg[6] })
  if not acts then die("status " .. tostring(arg[5]), msg, code) end
  for _, a in ipairs(acts) do print(sb.json_encode(a)) end
else
  die(cmd, "unknown command")
end
eng:close()
