-- Which jobs the index holds nowhere: ARGV[3] packs rows of (id, parking key index, 0
-- for none). Returns the absent ids.
local absent = {}
for _, row in ipairs(unpack_rows(ARGV[3], 2)) do
  local id, key_index = row[1], tonumber(row[2])
  local parked = key_index > 0 and redis.call('ZSCORE', KEYS[key_index], id)
  if not (redis.call('ZSCORE', WAITING, id) or redis.call('ZSCORE', DELAYED, id)
      or redis.call('ZSCORE', ACTIVE, id) or parked) then
    absent[#absent + 1] = id
  end
end
return absent
