-- Which jobs the index holds nowhere: ARGV[3] packs rows of (id, parking key index, 0
-- for none, org id). Returns the absent ids.
local absent = {}
for _, row in ipairs(unpack_rows(ARGV[3], 3)) do
  local id, key_index, org = row[1], tonumber(row[2]), row[3]
  local parked = key_index > 0 and redis.call('ZSCORE', KEYS[key_index], id)
  if not (indexed(id, org) or parked) then
    absent[#absent + 1] = id
  end
end
return absent
