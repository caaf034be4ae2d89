-- Promote due delayed jobs, then pop up to ARGV[3] waiting jobs into the active set
-- with the lease deadline ARGV[4]; at most ARGV[5] delayed jobs are promoted per call.
-- Returns {epoch present (0/1), tasks with parked jobs, popped ids...}.
local limit, deadline, promote_max = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', NOW_ARG, 'WITHSCORES',
  'LIMIT', 0, promote_max)
for i = 1, #due, 2 do
  local id = due[i]
  redis.call('ZADD', WAITING, fmt(ready_score(priority_of(id), tonumber(due[i + 1]))), id)
  redis.call('ZREM', DELAYED, id)
end
local out = {redis.call('EXISTS', EPOCH), redis.call('SCARD', PAUSED)}
local popped = redis.call('ZPOPMIN', WAITING, limit)
for i = 1, #popped, 2 do
  redis.call('ZADD', ACTIVE, deadline, popped[i])
  out[#out + 1] = popped[i]
end
return out
