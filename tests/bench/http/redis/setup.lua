-- provisioning: agents a1..aN available, all in the queue's idle set.
-- KEYS[1] idle:<queue>; ARGV[1] N.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
for i = 1, tonumber(ARGV[1]) do
  redis.call('HSET', 'agent:a' .. i, 'status', 'available', 'idle_since', now + i, 'calls', 0)
  redis.call('ZADD', KEYS[1], now + i, 'a' .. i)
end
return tonumber(ARGV[1])
