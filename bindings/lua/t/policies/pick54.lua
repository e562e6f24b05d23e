-- pick54: ring the agent the gateway asked for (attrs.want) when free, else
-- the free agent whose id sorts first. Written with Lua 5.4-only syntax
-- (<const>, //, bitwise |, math.tointeger) so it can run only in the
-- engine's own Lua 5.4, never in a 5.1 or LuaJIT host.
local WAIT <const> = 5

local P = {}

function P.route(call, agents, ctx)
  local want = call.attrs.want
  local pick
  for _, a in ipairs(agents) do
    if a.id == want then pick = a break end
    if not pick or a.id < pick.id then pick = a end
  end
  if not pick then return { wait = WAIT } end
  ctx.log("runtime", _VERSION, math.type(1))
  local t = (7 // 2) | 1 -- 3
  return { ring = pick.id, timeout = t * 5 + math.tointeger(5.0) } -- 20 s
end

return P
