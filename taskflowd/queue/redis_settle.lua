-- Reflect outcomes the database applied: ARGV[3] packs rows of (id, kind, retry at µs),
-- kind C completed, R retry, D dead-lettered, X cancelled. A retried job is queued
-- again at its retry time; the others leave the index. Returns 1 when jobs wait (those
-- of an org at its cap of running jobs may be claimable now), else 0.
local completed, failed, retried = 0, 0, 0
for _, row in ipairs(unpack_rows(ARGV[3], 3)) do
  local id, kind = row[1], row[2]
  deactivate(id)
  if kind == 'R' then
    local priority, org = job_of(id)
    enqueue(id, priority, org, tonumber(row[3]))
    failed = failed + 1
    retried = retried + 1
  else
    redis.call('HDEL', JOBS, id)
    if kind == 'C' then
      completed = completed + 1
    elseif kind == 'D' then
      failed = failed + 1
      redis.call('ZADD', DEAD, NOW_ARG, id)
    end
  end
end
flush()
if completed > 0 then
  redis.call('INCRBY', COMPLETED, completed)
end
if failed > 0 then
  redis.call('INCRBY', FAILED, failed)
  redis.call('ZREMRANGEBYRANK', DEAD, 0, -(DEAD_LETTER_KEPT + 1))
end
if retried > 0 then
  redis.call('PUBLISH', CHANNEL, 'retry')
end
if redis.call('EXISTS', READY) == 1 or redis.call('EXISTS', WAITING) == 1 then
  return 1
end
return 0
