-- One rate limit decision, atomic in Redis. KEYS[1]: the limited key.
-- ARGV: algorithm ("gcra", "sliding", "fixed"), limit, then
--   gcra: T (µs between requests at the steady rate), tau (Burst*T, µs);
--   windows: window (µs), unused.
-- Returns {allowed (0/1), remaining, reset (µs), retry_after (µs)}.
-- Times are the server's (TIME), in µs: below 2^53, exact in Lua's doubles.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local alg = ARGV[1]
local limit = tonumber(ARGV[2])

if alg == 'gcra' then
  local T = tonumber(ARGV[3])
  local tau = tonumber(ARGV[4])
  local tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  local allow_at = tat - tau
  if now < allow_at then
    return {0, 0, tat - now, allow_at - now}
  end
  local new = tat + T
  -- The key lives as long as it limits anything: until the bucket is full again.
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
  return {1, math.floor((now + tau - tat) / T), new - now, 0}
end

-- Windows: a hash {w = window index, c = count in it, p = count in the window before}.
local W = tonumber(ARGV[3])
local idx = math.floor(now / W)
local v = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(v[1]) or idx
local c = tonumber(v[2]) or 0
local p = tonumber(v[3]) or 0
if w ~= idx then
  if w == idx - 1 then p = c else p = 0 end
  c = 0
end
local elapsed = now - idx * W
local prev = 0
if alg == 'sliding' and p > 0 then prev = p * (W - elapsed) / W end
if c + prev + 1 > limit then
  local wait
  if alg == 'fixed' or c + 1 > limit then
    wait = W - elapsed
    if alg == 'sliding' and c > 0 then
      local g = 1 - (limit - 1) / c
      if g > 0 then wait = wait + math.ceil(g * W) end
    end
  else
    local f = 1 - (limit - c - 1) / p
    wait = math.ceil(f * W) - elapsed
    if wait < 1 then wait = 1 end
  end
  return {0, 0, W - elapsed, wait}
end
c = c + 1
redis.call('HSET', KEYS[1], 'w', idx, 'c', c, 'p', p)
-- Sliding windows still weigh this count during the next window.
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * W / 1000))
local remaining = math.floor(limit - c - prev)
if remaining < 0 then remaining = 0 end
return {1, remaining, W - elapsed, 0}
