-- Promote due delayed jobs, then pop up to ARGV[3] waiting jobs into the active set
-- with the lease deadline ARGV[4]; at most ARGV[5] delayed jobs are promoted per call.
-- Jobs are taken round-robin across the orgs with waiting jobs, those served longest ago
-- first, each org taking an equal share of what is left per round, up to its room under
-- its cap of running jobs (its CAPS override, else ARGV[6]; 0: no cap).
-- Returns {epoch present (0/1), tasks with parked jobs, then each popped id followed by
-- its waiting score}.
local limit, deadline, promote_max = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local default_cap = tonumber(ARGV[6])
local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', NOW_ARG, 'WITHSCORES',
  'LIMIT', 0, promote_max)
local promoted = {}
for i = 1, #due, 2 do
  local id = due[i]
  local priority, org = job_of(id)
  redis.call('ZADD', waiting_of(org), fmt(ready_score(priority, tonumber(due[i + 1]))), id)
  redis.call('ZREM', DELAYED, id)
  promoted[org] = true
end
for org in pairs(promoted) do
  redis.call('ZADD', READY, 'NX', NOW_ARG, org)
end
if redis.call('EXISTS', WAITING) == 1 then
  redis.call('ZADD', READY, 'NX', 0, '')
end
local out = {redis.call('EXISTS', EPOCH), redis.call('SCARD', PAUSED)}

local function room_of(org)
  if org == '' then
    return limit
  end
  local cap = tonumber(redis.call('HGET', CAPS, org) or default_cap) or 0
  if cap <= 0 then
    return limit
  end
  return cap - (tonumber(redis.call('HGET', RUNNING, org) or '0') or 0)
end

-- The orgs next in turn, passing over (and sending to the back) at most SKIP_MAX orgs
-- at their cap, so a few capped orgs at the front cannot leave a claim empty.
local SKIP_MAX = 64
local turn, room, open = {}, {}, {}
for _, org in ipairs(redis.call('ZRANGE', READY, 0, limit + SKIP_MAX - 1)) do
  if #open >= limit then
    break
  end
  turn[#turn + 1] = org
  room[org] = room_of(org)
  if room[org] > 0 then
    open[#open + 1] = org
  end
end
local taken = 0
while taken < limit and #open > 0 do
  local share = math.max(1, math.floor((limit - taken) / #open))
  local still = {}
  for _, org in ipairs(open) do
    local want = math.min(share, room[org], limit - taken)
    if want <= 0 then
      break
    end
    local popped = redis.call('ZPOPMIN', waiting_of(org), want)
    local got, added = #popped / 2, 0
    for i = 1, #popped, 2 do
      added = added + redis.call('ZADD', ACTIVE, deadline, popped[i])
      out[#out + 1] = popped[i]
      out[#out + 1] = popped[i + 1]
    end
    if added > 0 and org ~= '' then
      redis.call('HINCRBY', RUNNING, org, added)
    end
    taken = taken + got
    room[org] = room[org] - got
    if got == want and room[org] > 0 then
      still[#still + 1] = org
    end
  end
  open = still
end
for _, org in ipairs(turn) do
  if redis.call('EXISTS', waiting_of(org)) == 1 then
    redis.call('ZADD', READY, NOW_ARG, org)
  else
    redis.call('ZREM', READY, org)
  end
end
return out
