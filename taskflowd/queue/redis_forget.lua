-- Drop index entries the reconciler found stale: ARGV[3..] are (key index, id, score)
-- triples; an entry goes only if its score is still the one read, so a job queued
-- again meanwhile stays. Returns how many entries were dropped.
local dropped = 0
for i = 3, #ARGV, 3 do
  local key, id = KEYS[tonumber(ARGV[i])], ARGV[i + 1]
  if redis.call('ZSCORE', key, id) == ARGV[i + 2] then
    redis.call('ZREM', key, id)
    dropped = dropped + 1
    if not (redis.call('ZSCORE', WAITING, id) or redis.call('ZSCORE', DELAYED, id)
        or redis.call('ZSCORE', ACTIVE, id)) then
      redis.call('HDEL', JOBS, id)
    end
  end
end
return dropped
