-- Shared by every queue script (prepended when the scripts are loaded).
-- KEYS[1..12] are the queue's fixed keys; scripts that touch per-task parking keys (or
-- the waiting zsets of some orgs) get them as KEYS[13..]. ARGV[1] is the wake-up
-- channel, ARGV[2] the caller's time in µs.
-- Scores are integers kept exact in doubles: µs since the epoch for delayed jobs,
-- leases and parked jobs; for waiting jobs (10 - priority) * 2^42 + ms since the epoch,
-- so ZPOPMIN yields the highest priority first, then the earliest due.
-- Waiting jobs are kept per organization, in `<waiting>:<org id>`; READY holds the orgs
-- with waiting jobs, scored by when they were last served, so claims go round-robin
-- across orgs. These per-org keys share the queue's hash tag, hence its cluster slot.
-- The legacy single waiting zset (KEYS[1] itself, written by earlier releases) is served
-- as the org '' until it is empty. JOBS maps a job to "<priority> <org id>" ("<priority>"
-- when written by an earlier release). RUNNING counts each org's jobs in ACTIVE, CAPS
-- holds the orgs' overrides of their cap on running jobs.
local WAITING, DELAYED, ACTIVE, JOBS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local PAUSED, EPOCH, COMPLETED, FAILED, DEAD = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local READY, RUNNING, CAPS = KEYS[10], KEYS[11], KEYS[12]
local CHANNEL, NOW_ARG = ARGV[1], ARGV[2]
local NOW = tonumber(NOW_ARG)
local PRIORITY_SPAN = 4398046511104
local DEAD_LETTER_KEPT = 10000

local function fmt(x)
  return string.format('%.0f', x)
end

local function ready_score(priority, run_at_us)
  return (10 - priority) * PRIORITY_SPAN + math.floor(run_at_us / 1000)
end

local function waiting_of(org)
  if org == '' then
    return WAITING
  end
  return WAITING .. ':' .. org
end

-- (priority, org id) of an indexed job; (0, '') when unknown.
local function job_of(id)
  local value = redis.call('HGET', JOBS, id)
  if not value then
    return 0, ''
  end
  local priority, org = string.match(value, '^(%S*) ?(.*)$')
  return tonumber(priority) or 0, org
end

local function set_job(id, priority, org)
  if org == '' then
    redis.call('HSET', JOBS, id, priority)
  else
    redis.call('HSET', JOBS, id, priority .. ' ' .. org)
  end
end

-- Changes of RUNNING and READY made while a script runs are gathered here and applied
-- once per org by `flush()`, which every script that changes them calls last.
local running_delta, readied = {}, {}
local legacy = nil

-- Whether the legacy single waiting zset exists (looked up once per script).
local function has_legacy()
  if legacy == nil then
    legacy = redis.call('EXISTS', WAITING) == 1
  end
  return legacy
end

-- Move an active entry (or add one); a new entry counts as running for its org.
local function activate(id, deadline, org)
  if redis.call('ZADD', ACTIVE, deadline, id) == 1 and org ~= '' then
    running_delta[org] = (running_delta[org] or 0) + 1
  end
end

-- Drop an active entry, if any, and its count. Call before the job's JOBS entry goes.
local function deactivate(id)
  if redis.call('ZREM', ACTIVE, id) == 1 then
    local _, org = job_of(id)
    if org ~= '' then
      running_delta[org] = (running_delta[org] or 0) - 1
    end
  end
end

local function flush()
  for org, delta in pairs(running_delta) do
    if delta ~= 0 and redis.call('HINCRBY', RUNNING, org, delta) <= 0 then
      redis.call('HDEL', RUNNING, org)
    end
  end
  for org in pairs(readied) do
    redis.call('ZADD', READY, 'NX', NOW_ARG, org)
  end
end

local function unwait(id, org)
  redis.call('ZREM', waiting_of(org), id)
  if org ~= '' and has_legacy() then
    redis.call('ZREM', WAITING, id)
  end
end

-- Index a queued job as waiting (due) or delayed; returns 1 when it is due now.
local function enqueue(id, priority, org, run_at_us)
  if run_at_us <= NOW then
    redis.call('ZREM', DELAYED, id)
    if org ~= '' and has_legacy() then
      redis.call('ZREM', WAITING, id)
    end
    redis.call('ZADD', waiting_of(org), fmt(ready_score(priority, run_at_us)), id)
    readied[org] = true
    return 1
  end
  unwait(id, org)
  redis.call('ZADD', DELAYED, fmt(run_at_us), id)
  return 0
end

-- Rows packed into one argument (cheaper to send than thousands of arguments): every
-- field ends with byte 31, and each row has `width` fields.
local function unpack_rows(packed, width)
  local out, row = {}, {}
  for field in string.gmatch(packed, '([^\31]*)\31') do
    row[#row + 1] = field
    if #row == width then
      out[#out + 1] = row
      row = {}
    end
  end
  return out
end

local function forget(id)
  local _, org = job_of(id)
  unwait(id, org)
  redis.call('ZREM', DELAYED, id)
  deactivate(id)
  redis.call('HDEL', JOBS, id)
end

-- Whether the job waits (under `org` or in the legacy zset), is delayed or is active.
local function indexed(id, org)
  return redis.call('ZSCORE', waiting_of(org), id)
    or (has_legacy() and redis.call('ZSCORE', WAITING, id))
    or redis.call('ZSCORE', DELAYED, id) or redis.call('ZSCORE', ACTIVE, id)
end
