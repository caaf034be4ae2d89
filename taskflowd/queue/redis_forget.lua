-- Drop index entries the reconciler found stale: ARGV[3..] are (key index, id, score)
-- triples, the key being a waiting zset or DELAYED; an entry goes only if its score is
-- still the one read, so a job queued again meanwhile stays. Returns how many entries
-- were dropped.
local dropped = 0
for i = 3, #ARGV, 3 do
  local key, id = KEYS[tonumber(ARGV[i])], ARGV[i + 1]
  if redis.call('ZSCORE', key, id) == ARGV[i + 2] then
    redis.call('ZREM', key, id)
    dropped = dropped + 1
    local _, org = job_of(id)
    if not indexed(id, org) then
      redis.call('HDEL', JOBS, id)
    end
  end
end
return dropped
