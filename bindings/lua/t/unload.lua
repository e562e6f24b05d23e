-- unload.lua — run by driver.sh's check_unload under valgrind: an engine
-- whose agent has a time zone (loading it into the engine's process-wide
-- cache) is opened, used and closed, and the host's Lua then closes its
-- state, which unloads C modules. The module must stay mapped (-z nodelete),
-- so that what the engine keeps for the process stays reachable, not lost.
local sb = require "switchboard"
local dir = os.tmpname()
os.remove(dir)
-- In the driver's directory, which goes when it ends, also after a crash.
if os.getenv("SB_LUA_TMP") then dir = os.getenv("SB_LUA_TMP") .. "/" .. dir:match("[^/]+$") end
assert(os.execute("mkdir -p '" .. dir .. "'"))
local eng = assert(sb.open{ data_dir = dir, policy_dir = "policies", sync = "none", log = "none" })
assert(eng:account_put{ id = "acme" })
assert(eng:agent_put("acme", { id = "a1", status = "available", timezone = "Europe/Berlin",
                               devices = { softphone = "sip:a1@pbx.example" } }))
eng:close()
os.execute("rm -rf '" .. dir .. "'")
print("ok - opened, used and closed an engine with a time zone loaded")
