-- Queue again the parked jobs of tasks no longer paused: KEYS[13..] are their parking
-- keys and ARGV[3..] the task ids, in the same order. Returns how many jobs moved.
local moved = 0
for k = 13, #KEYS do
  local members = redis.call('ZRANGE', KEYS[k], 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local priority, org = job_of(members[i])
    enqueue(members[i], priority, org, tonumber(members[i + 1]))
    moved = moved + 1
  end
  redis.call('DEL', KEYS[k])
  redis.call('SREM', PAUSED, ARGV[k - 10])
end
flush()
if moved > 0 then
  redis.call('PUBLISH', CHANNEL, 'unpark')
end
return moved
