-- oneshot.lua — one call routed by the Lua 5.4 policy, nothing else: the .t
-- drivers run it under LD_DEBUG=bindings to see what every lua_* call binds to.
local sb = require "switchboard"
local dir = os.tmpname()
os.remove(dir)
-- In the driver's directory, which goes when it ends, also after a crash.
if os.getenv("SB_LUA_TMP") then dir = os.getenv("SB_LUA_TMP") .. "/" .. dir:match("[^/]+$") end
local eng = assert(sb.open{ data_dir = dir, policy_dir = assert(os.getenv("SB_LUA_T")) .. "/policies",
                            sync = "none", log = "none" })
assert(eng:account_put{ id = "acme" })
assert(eng:agent_put("acme", { id = "bob", status = "available", devices = { softphone = "sip:bob@127.0.0.1" } }))
assert(eng:queue_put("acme", { id = "support", policy = "pick54", members = { { agent = "bob" } } }))
local acts = assert(eng:submit("acme", { type = "offer", call = "c1", queue = "support", caller = "+442079460001" }))
assert(eng:reload()) -- builds the engine's Lua 5.4 states again
eng:close()
os.execute("rm -rf '" .. dir .. "'")
print("ring " .. tostring(acts[1] and acts[1].agent))
