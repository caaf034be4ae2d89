-- Count each org's jobs in the active set again and replace RUNNING with the counts, so
-- whatever drift a failure left behind is corrected. Returns the active jobs counted.
local counts, total = {}, 0
for _, id in ipairs(redis.call('ZRANGE', ACTIVE, 0, -1)) do
  local _, org = job_of(id)
  if org ~= '' then
    counts[org] = (counts[org] or 0) + 1
    total = total + 1
  end
end
redis.call('DEL', RUNNING)
for org, n in pairs(counts) do
  redis.call('HSET', RUNNING, org, n)
end
return total
