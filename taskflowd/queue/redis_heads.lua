-- {score of the first waiting job of the orgs next in turn (and of the legacy zset),
-- µs of the first delayed job}; false where there is none.
local best = false
local function consider(key)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #head > 0 and (not best or tonumber(head[2]) < best) then
    best = tonumber(head[2])
  end
end
consider(WAITING)
for _, org in ipairs(redis.call('ZRANGE', READY, 0, 15)) do
  consider(waiting_of(org))
end
local delayed = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
return {best and fmt(best) or false, #delayed > 0 and delayed[2] or false}
