-- peek54: looks for the host's globals from inside the engine and reports
-- what it sees. Rings the agent named by the global `host_secret` if the
-- policy could see it (it must not), else the first free agent by id.
local P = {}

function P.route(call, agents, ctx)
  local seen = rawget(_ENV, "host_secret")
  local wrote = pcall(function() engine_global = "from the policy" end) -- luacheck: ignore
  ctx.log("peek:", tostring(seen), "global write allowed:", tostring(wrote),
          "jit:", tostring(rawget(_ENV, "jit")), _VERSION)
  local pick
  for _, a in ipairs(agents) do
    if a.id == seen then pick = a break end
    if not pick or a.id < pick.id then pick = a end
  end
  if not pick then return { wait = 5 } end
  return { ring = pick.id }
end

return P
