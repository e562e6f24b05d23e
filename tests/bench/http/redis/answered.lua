-- ring_result answered: the call is connected, its agent on the call.
-- KEYS[1] call:<id>; ARGV[1] the agent that answered. Returns "connect".
local c = redis.call('HMGET', KEYS[1], 'state', 'agent')
if c[1] ~= 'ringing' or c[2] ~= ARGV[1] then
  return redis.error_reply('ESTATE that agent is not ringing for this call')
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'state', 'connected', 'answered', t[1] * 1000000 + t[2])
redis.call('HSET', 'agent:' .. ARGV[1], 'status', 'on_call')
return 'connect'
