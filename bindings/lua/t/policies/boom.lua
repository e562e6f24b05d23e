-- boom: fails at run time, so the call takes the queue's fallback and the
-- error (with file:line) must reach the host through the engine's log and
-- the call's trace.
local P = {}

function P.route(call, agents, ctx)
  error("boom at " .. call.id)
end

return P
