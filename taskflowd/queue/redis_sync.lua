-- Make the index say what the database says about some jobs. ARGV[3] packs rows of
-- seven: id, state, priority ('' keeps the indexed one), score (µs), task id, parking
-- key index, org id ('' keeps the indexed one).
-- States: Q queued (run_at), N queued unless indexed anywhere (reconciler), A running
-- (lease deadline), P parked while its task is paused (run_at), X gone (final/deleted),
-- F dead-lettered. ARGV[4] names the sender ('' for none). Returns how many jobs were
-- (re)queued. The wake-up published for them reads "sync <sender> <earliest score>":
-- a node skips its own, and an idle one that looks again before that instant sleeps on.
local queued = 0
local earliest = nil
for _, row in ipairs(unpack_rows(ARGV[3], 7)) do
  local id, state, priority = row[1], row[2], row[3]
  local score, task_id, key_index, org = row[4], row[5], tonumber(row[6]), row[7]
  -- An execution's org never changes: the indexed one differs only when it is unknown
  -- ('', an entry of an earlier release).
  local known_org = org
  if priority == '' or org == '' or state == 'A' then
    local known_priority
    known_priority, known_org = job_of(id)
    if priority == '' then
      priority = tostring(known_priority)
    end
    if org == '' then
      org = known_org
    end
  end
  if state == 'N' then
    local parked = key_index > 0 and redis.call('ZSCORE', KEYS[key_index], id)
    if not (indexed(id, org) or parked) then
      state = 'Q'
    end
  end
  if state == 'Q' then
    deactivate(id)
    set_job(id, priority, org)
    redis.call('ZREM', DEAD, id)
    enqueue(id, tonumber(priority), org, tonumber(score))
    queued = queued + 1
    if earliest == nil or tonumber(score) < earliest then
      earliest = tonumber(score)
    end
  elseif state == 'A' then
    unwait(id, known_org)
    redis.call('ZREM', DELAYED, id)
    if org ~= known_org then
      deactivate(id)
      set_job(id, priority, org)
    end
    activate(id, score, org)
  elseif state == 'P' then
    forget(id)
    set_job(id, priority, org)
    redis.call('ZADD', KEYS[key_index], score, id)
    redis.call('SADD', PAUSED, task_id)
  elseif state == 'X' then
    forget(id)
  elseif state == 'F' then
    forget(id)
    redis.call('ZADD', DEAD, score, id)
  end
end
flush()
if queued > 0 then
  redis.call('PUBLISH', CHANNEL, 'sync ' .. ARGV[4] .. ' ' .. fmt(earliest))
end
return queued
