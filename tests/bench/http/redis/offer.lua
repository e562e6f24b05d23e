-- offer: ring the longest-idle available agent of the queue, atomically.
-- KEYS[1] idle:<queue>  (sorted set: available agents scored by idle_since, µs)
-- KEYS[2] call:<id>     (hash: the call)
-- ARGV    call id, queue, caller
-- Returns the agent rung, or nil when nobody is available (the call waits).
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('EEXIST call id in use')
end
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local a = redis.call('ZRANGE', KEYS[1], 0, 0)
if #a == 0 then
  redis.call('HSET', KEYS[2], 'state', 'waiting', 'queue', ARGV[2], 'caller', ARGV[3],
             'offered', now)
  return false
end
local agent = a[1]
redis.call('ZREM', KEYS[1], agent)
redis.call('HSET', 'agent:' .. agent, 'status', 'reserved', 'call', ARGV[1])
redis.call('HSET', KEYS[2], 'state', 'ringing', 'queue', ARGV[2], 'caller', ARGV[3],
           'agent', agent, 'offered', now)
return agent
