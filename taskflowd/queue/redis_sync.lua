-- Make the index say what the database says about some jobs. ARGV[3] packs rows of six:
-- id, state, priority ('' keeps the indexed one), score (µs), task id, parking key index.
-- States: Q queued (run_at), N queued unless indexed anywhere (reconciler), A running
-- (lease deadline), P parked while its task is paused (run_at), X gone (final/deleted),
-- F dead-lettered. Returns how many jobs were (re)queued.
local queued = 0
for _, row in ipairs(unpack_rows(ARGV[3], 6)) do
  local id, state, priority = row[1], row[2], row[3]
  local score, task_id, key_index = row[4], row[5], tonumber(row[6])
  if state == 'N' then
    local parked = key_index > 0 and redis.call('ZSCORE', KEYS[key_index], id)
    if not (redis.call('ZSCORE', WAITING, id) or redis.call('ZSCORE', DELAYED, id)
        or redis.call('ZSCORE', ACTIVE, id) or parked) then
      state = 'Q'
    end
  end
  if state == 'Q' then
    if priority == '' then
      priority = priority_of(id)
    else
      redis.call('HSET', JOBS, id, priority)
    end
    redis.call('ZREM', ACTIVE, id)
    redis.call('ZREM', DEAD, id)
    enqueue(id, tonumber(priority), tonumber(score))
    queued = queued + 1
  elseif state == 'A' then
    redis.call('ZREM', WAITING, id)
    redis.call('ZREM', DELAYED, id)
    redis.call('ZADD', ACTIVE, score, id)
  elseif state == 'P' then
    forget(id)
    redis.call('HSET', JOBS, id, priority)
    redis.call('ZADD', KEYS[key_index], score, id)
    redis.call('SADD', PAUSED, task_id)
  elseif state == 'X' then
    forget(id)
  elseif state == 'F' then
    forget(id)
    redis.call('ZADD', DEAD, score, id)
  end
end
if queued > 0 then
  redis.call('PUBLISH', CHANNEL, 'sync')
end
return queued
