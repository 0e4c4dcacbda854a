"""The GCRA check as a Redis Lua script (kept in Python so it ships with the package)."""

GCRA_LUA = """\
-- GCRA over one or more buckets, all or nothing, in one round trip.
--
-- KEYS[i]      bucket keys
-- ARGV[1]      cost (0 = only look)
-- ARGV[2]      1 = commit when allowed, 0 = dry run
-- ARGV[1+2i]   limit of bucket i (requests per period)
-- ARGV[2+2i]   period of bucket i, microseconds
--
-- A bucket stores its theoretical arrival time (TAT, microseconds, Redis clock), with
-- an expiry at the moment the bucket is full again: no key outlives its use.
-- Returns {allowed, then per bucket: remaining, reset_us, retry_us}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local commit = ARGV[2] == '1'
local allowed = 1
local out = {0}
local tats = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[1 + 2 * i])
  local period = tonumber(ARGV[2 + 2 * i])
  local interval = period / limit
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local over = new_tat - now - period
  local retry = 0
  if over > 0 then
    allowed = 0
    retry = over
    new_tat = tat
  end
  tats[i] = new_tat
  local used = new_tat - now
  out[#out + 1] = math.floor((period - used) / interval)
  out[#out + 1] = math.ceil(used)
  out[#out + 1] = math.ceil(retry)
end
out[1] = allowed
if allowed == 1 and commit and cost > 0 then
  for i = 1, #KEYS do
    local ttl = math.ceil((tats[i] - now) / 1000)
    if ttl > 0 then
      redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
    end
  end
end
return out
"""
