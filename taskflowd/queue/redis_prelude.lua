-- Shared by every queue script (prepended when the scripts are loaded).
-- KEYS[1..9] are the queue's fixed keys; scripts that touch per-task parking keys get
-- them as KEYS[10..]. ARGV[1] is the wake-up channel, ARGV[2] the caller's time in µs.
-- Scores are integers kept exact in doubles: µs since the epoch for delayed jobs,
-- leases and parked jobs; for waiting jobs (10 - priority) * 2^42 + ms since the epoch,
-- so ZPOPMIN yields the highest priority first, then the earliest due.
local WAITING, DELAYED, ACTIVE, JOBS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local PAUSED, EPOCH, COMPLETED, FAILED, DEAD = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
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

local function priority_of(id)
  return tonumber(redis.call('HGET', JOBS, id) or '0') or 0
end

-- Index a queued job as waiting (due) or delayed; returns 1 when it is due now.
local function enqueue(id, priority, run_at_us)
  if run_at_us <= NOW then
    redis.call('ZREM', DELAYED, id)
    redis.call('ZADD', WAITING, fmt(ready_score(priority, run_at_us)), id)
    return 1
  end
  redis.call('ZREM', WAITING, id)
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
  redis.call('ZREM', WAITING, id)
  redis.call('ZREM', DELAYED, id)
  redis.call('ZREM', ACTIVE, id)
  redis.call('HDEL', JOBS, id)
end
