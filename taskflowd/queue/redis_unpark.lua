-- Queue again the parked jobs of tasks no longer paused: KEYS[10..] are their parking
-- keys and ARGV[3..] the task ids, in the same order. Returns how many jobs moved.
local moved = 0
for k = 10, #KEYS do
  local members = redis.call('ZRANGE', KEYS[k], 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    enqueue(members[i], priority_of(members[i]), tonumber(members[i + 1]))
    moved = moved + 1
  end
  redis.call('DEL', KEYS[k])
  redis.call('SREM', PAUSED, ARGV[k - 7])
end
if moved > 0 then
  redis.call('PUBLISH', CHANNEL, 'unpark')
end
return moved
