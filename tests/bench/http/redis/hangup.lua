-- hangup: the call ends; its agent is available again, idle from now.
-- KEYS[1] call:<id>, KEYS[2] idle:<queue>. Returns "end".
local c = redis.call('HMGET', KEYS[1], 'state', 'agent')
if c[1] ~= 'connected' then
  return redis.error_reply('ESTATE the call is not connected')
end
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local agent = 'agent:' .. c[2]
redis.call('HSET', KEYS[1], 'state', 'ended', 'ended', now)
redis.call('HSET', agent, 'status', 'available', 'call', '', 'idle_since', now)
redis.call('HINCRBY', agent, 'calls', 1)
redis.call('ZADD', KEYS[2], now, c[2])
return 'end'
