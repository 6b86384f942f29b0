"""The Lua scripts behind the shared governor, each one atomic on the Redis server.

Every script reads the time from the server (``TIME``), never from a client, so processes on
machines whose clocks disagree still share one bucket. Numbers go back to the client as strings
(Redis would truncate a Lua number to an integer).

A provider resource is two keys: ``...:state``, a hash (bucket levels and stamps in server
milliseconds, limits learnt from headers, the pause after a 429, the adaptive cap), and
``...:slots``, a sorted set of the calls in flight scored by the expiry of their lease. A lease
not renewed lapses, so a killed process cannot hold a slot for ever.

A resource's configuration travels with each call, as :data:`CONFIG_FIELDS` numbers; so two
processes configured differently each apply their own limits to the shared state.
"""

from __future__ import annotations

# What a resource's configuration is, in the order the scripts read it (0: not set).
CONFIG_FIELDS = (
    "concurrency",
    "adaptive",
    "initial_concurrency",
    "max_concurrency",
    "burst",
    "learn",
    "requests_per_minute",
    "tokens_per_minute",
    "input_tokens_per_minute",
    "output_tokens_per_minute",
)

_PRELUDE = """
local KINDS = {'requests', 'tokens', 'input_tokens', 'output_tokens'}
local NCONFIG = %(nconfig)d

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

local function load(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

local function config(offset)
  local cfg = {}
  for i = 1, NCONFIG do cfg[i] = tonumber(ARGV[offset + i]) end
  return cfg
end

-- The per-minute limit of bucket i: the configured one, or the one learnt from headers, the
-- lower of the two when both are known; 0 when neither is.
local function effective(h, cfg, i)
  local configured = cfg[6 + i]
  local learnt = 0
  if cfg[6] == 1 then learnt = tonumber(h[KINDS[i] .. ':learnt'] or '0') end
  if configured > 0 and learnt > 0 then return math.min(configured, learnt) end
  if configured > 0 then return configured end
  return learnt
end

local function has_buckets(h, cfg)
  for i = 1, 4 do if effective(h, cfg, i) > 0 then return true end end
  return false
end

-- How many calls may be in flight: the configured cap; while no rate is known, the adaptive
-- one; once one is, the buckets govern.
local function cap_of(h, cfg, buckets)
  if cfg[1] > 0 then return cfg[1] end
  if buckets then
    if cfg[2] == 1 then return cfg[4] end
    return math.huge
  end
  if cfg[2] ~= 1 then return math.huge end
  return tonumber(h['cap'] or cfg[3])
end

-- A continuously refilled bucket: a new one starts at a tenth of its capacity (a gradual start);
-- one held by a pause has its stamp in the future and refills only from then.
local function refill(h, kind, per_minute, burst, now)
  local capacity = math.max(1, per_minute / 60 * burst)
  local level = tonumber(h[kind .. ':lvl'] or '')
  local stamp = tonumber(h[kind .. ':at'] or '')
  if level == nil or stamp == nil then
    level = math.max(math.min(1, capacity), capacity * 0.1)
    stamp = now
  end
  if now > stamp then
    level = level + (now - stamp) * per_minute / 60000
    stamp = now
  end
  return math.min(level, capacity), stamp, capacity
end
"""

_PRELUDE = _PRELUDE % {"nconfig": len(CONFIG_FIELDS)}

# KEYS: state and slots of each resource. ARGV: slot id, lease ms, idle ms, tokens, input
# tokens, output tokens, then each resource's configuration.
# Returns {1} when admitted (the slot is leased in every resource and the buckets charged), else
# {0, ms to wait for the buckets or a pause, 1 if a resource is full, ms until its first lease lapses}.
ACQUIRE = (
    _PRELUDE
    + """
local now = now_ms()
local id, lease, idle = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local spend = {1, tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local wait, full, lapse = 0, 0, -1
local plans = {}
for r = 1, #KEYS / 2 do
  local state, slots = KEYS[2 * r - 1], KEYS[2 * r]
  local cfg = config(6 + (r - 1) * NCONFIG)
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  local h = load(state)
  local paused = tonumber(h['pause'] or '0')
  if now < paused then wait = math.max(wait, paused - now) end
  local buckets = {}
  for i = 1, 4 do
    local per_minute = effective(h, cfg, i)
    if per_minute > 0 then
      local level, stamp, capacity = refill(h, KINDS[i], per_minute, cfg[5], now)
      buckets[#buckets + 1] = {i, level, stamp, capacity}
      local need = math.min(spend[i], capacity)
      if level < need then
        wait = math.max(wait, math.max(now, stamp) - now + (need - level) * 60000 / per_minute)
      end
    end
  end
  if redis.call('ZCARD', slots) >= cap_of(h, cfg, #buckets > 0) then
    full = 1
    local first = redis.call('ZRANGE', slots, 0, 0, 'WITHSCORES')
    if first[2] then
      local left = tonumber(first[2]) - now
      if lapse < 0 or left < lapse then lapse = left end
    end
  end
  plans[r] = buckets
end
if wait > 0 or full == 1 then
  -- Keep the buckets as refilled, a new one above all: else it would start afresh at each ask.
  for r = 1, #KEYS / 2 do
    local state = KEYS[2 * r - 1]
    for _, b in ipairs(plans[r]) do
      local kind = KINDS[b[1]]
      redis.call('HSET', state, kind .. ':lvl', tostring(b[2]), kind .. ':at', tostring(b[3]),
        kind .. ':cap', tostring(b[4]))
    end
    if #plans[r] > 0 then redis.call('PEXPIRE', state, idle) end
  end
  return {0, tostring(wait), full, tostring(lapse)}
end
for r = 1, #KEYS / 2 do
  local state, slots = KEYS[2 * r - 1], KEYS[2 * r]
  redis.call('ZADD', slots, now + lease, id)
  for _, b in ipairs(plans[r]) do
    local kind = KINDS[b[1]]
    redis.call('HSET', state, kind .. ':lvl', tostring(b[2] - spend[b[1]]), kind .. ':at', tostring(b[3]),
      kind .. ':cap', tostring(b[4]))
  end
  redis.call('PEXPIRE', state, idle)
  redis.call('PEXPIRE', slots, idle)
end
return {1}
"""
)

# KEYS: state and slots of each resource. ARGV: slot id, channel, message, 1 if usage follows,
# then the estimated tokens, input and output tokens, and those spent. Gives the slot back,
# corrects the token buckets by what the call really spent, and tells the waiters.
RELEASE = (
    _PRELUDE
    + """
local id, channel, message, corrected = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
for r = 1, #KEYS / 2 do
  local state, slots = KEYS[2 * r - 1], KEYS[2 * r]
  redis.call('ZREM', slots, id)
  if corrected then
    for i = 2, 4 do
      local kind = KINDS[i]
      local level = tonumber(redis.call('HGET', state, kind .. ':lvl') or '')
      local capacity = tonumber(redis.call('HGET', state, kind .. ':cap') or '')
      if level ~= nil and capacity ~= nil then
        local refund = tonumber(ARGV[3 + i]) - tonumber(ARGV[6 + i])
        redis.call('HSET', state, kind .. ':lvl', tostring(math.min(capacity, level + refund)))
      end
    end
  end
end
redis.call('PUBLISH', channel, message)
return 1
"""
)

# KEYS: one sorted set of leases. ARGV: lease ms, then the ids held. Extends the leases still
# there (a lapsed one is not brought back); returns how many were.
RENEW = """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', until_ms, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[1]) * 4, redis.call('PTTL', KEYS[1])))
return renewed
"""

# KEYS: state and slots of one resource. ARGV: 'ok' or '429', seconds (the call's latency, or the
# Retry-After; -1 when none), idle ms, the configuration, then the per-minute limits the headers
# reported, by bucket (0: not reported). Learns the limits; on success grows the adaptive cap
# while it binds, on a 429 pauses the resource (every bucket empties and refills from the end of
# the pause) and cuts the adaptive cap. Returns the pause in seconds (0 on success).
REPORT = (
    _PRELUDE
    + """
local state, slots = KEYS[1], KEYS[2]
local mode, seconds, idle = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cfg = config(3)
local now = now_ms()
local h = load(state)
if cfg[6] == 1 then
  for i = 1, 4 do
    local reported = tonumber(ARGV[3 + NCONFIG + i])
    local field = KINDS[i] .. ':learnt'
    if reported > 0 and tonumber(h[field] or '0') ~= reported then
      redis.call('HSET', state, field, tostring(reported))
      h[field] = tostring(reported)
    end
  end
end
local adaptive = cfg[2] == 1 and not has_buckets(h, cfg)
local cap = tonumber(h['cap'] or cfg[3])
local latency = tonumber(h['latency'] or '1')
local result = '0'
if mode == 'ok' then
  latency = latency + 0.2 * (seconds - latency)
  if adaptive and redis.call('ZCARD', slots) >= cap - 1 then
    local step = 1 / cap
    if (h['slow'] or '1') == '1' then step = 1 end
    cap = math.min(cfg[4], cap + step)
  end
else
  redis.call('HINCRBY', state, 'throttles', 1)
  local pause = 1.0
  if seconds >= 0 then pause = seconds end
  local pause_end = now + pause * 1000
  if pause_end > tonumber(h['pause'] or '0') then
    redis.call('HSET', state, 'pause', tostring(pause_end))
    for i = 1, 4 do
      local kind = KINDS[i]
      local level = tonumber(h[kind .. ':lvl'] or '')
      if level ~= nil then
        local stamp = math.max(tonumber(h[kind .. ':at'] or '0'), pause_end)
        redis.call('HSET', state, kind .. ':lvl', tostring(math.min(level, 0)), kind .. ':at', tostring(stamp))
      end
    end
  end
  if adaptive and now - tonumber(h['lastcut'] or '-1e18') > latency * 1000 then
    local in_flight = redis.call('ZCARD', slots)
    cap = math.max(1, math.min(cap, in_flight) * 0.7)
    redis.call('HSET', state, 'slow', '0', 'lastcut', tostring(now))
  end
  result = tostring(pause)
end
redis.call('HSET', state, 'cap', tostring(cap), 'latency', tostring(latency))
redis.call('PEXPIRE', state, idle)
return result
"""
)

# The budget of a namespace: a hash of what is spent and what is reserved (``spent:requests``,
# ``held:tokens``...; ``r:<id>`` holds one reservation's tokens and dollars), and a sorted set
# of the reservations in flight scored by the expiry of their lease. A reservation whose lease
# lapsed (its process died mid-call) counts as spent: the call may well have been made.
_BUDGET = """
local MEASURES = {'requests', 'tokens', 'cost'}

local function lapse(budget, held, now)
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', held, '-inf', now)) do
    local amounts = redis.call('HGET', budget, 'r:' .. rid)
    if amounts then
      local tokens, cost = string.match(amounts, '(%S+) (%S+)')
      local spent = {1, tonumber(tokens), tonumber(cost)}
      for m = 1, 3 do
        redis.call('HINCRBYFLOAT', budget, 'spent:' .. MEASURES[m], spent[m])
        redis.call('HINCRBYFLOAT', budget, 'held:' .. MEASURES[m], -spent[m])
      end
      redis.call('HDEL', budget, 'r:' .. rid)
      redis.call('HSET', budget, 'x:' .. rid, amounts)  -- if it settles after all, undo this charge
    end
    redis.call('ZREM', held, rid)
  end
end
"""

# KEYS: the budget hash and its reservations. ARGV: reservation id, lease ms, idle ms, channel,
# tokens, dollars, then the budget's requests, tokens and dollars (-1: no bound), and 1 if calls
# in flight finish (a call that fits once they settle waits), 0 if they are cancelled.
# Returns {'ok'}, {'wait', ms until the first reservation's lease lapses} or {'exhausted', measure, spent}.
RESERVE = (
    _PRELUDE
    + _BUDGET
    + """
local budget, held = KEYS[1], KEYS[2]
local id, lease, idle, channel = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local want = {1, tonumber(ARGV[5]), tonumber(ARGV[6])}
local bound = {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
local patient = ARGV[10] == '1'
local now = now_ms()
lapse(budget, held, now)
local h = load(budget)

local function short(reserved)
  for m = 1, 3 do
    local measure = MEASURES[m]
    local total = tonumber(h['spent:' .. measure] or '0') + want[m]
    if reserved then total = total + tonumber(h['held:' .. measure] or '0') end
    if bound[m] >= 0 and total > bound[m] + 1e-9 then return measure end
  end
  return nil
end

if not h['exhausted'] then
  local measure = short(not patient)
  if measure then
    local text = measure .. ' ' .. (h['spent:' .. measure] or '0')
    redis.call('HSET', budget, 'exhausted', text)
    redis.call('PEXPIRE', budget, idle)
    redis.call('PUBLISH', channel, 'x ' .. text)
    h['exhausted'] = text
  end
end
if h['exhausted'] then
  local measure, spent = string.match(h['exhausted'], '(%S+) (%S+)')
  return {'exhausted', measure, spent}
end
if short(true) then
  local first = redis.call('ZRANGE', held, 0, 0, 'WITHSCORES')
  local lapse = -1
  if first[2] then lapse = tonumber(first[2]) - now end
  return {'wait', tostring(lapse)}
end
redis.call('ZADD', held, now + lease, id)
redis.call('HSET', budget, 'r:' .. id, ARGV[5] .. ' ' .. ARGV[6])
for m = 1, 3 do redis.call('HINCRBYFLOAT', budget, 'held:' .. MEASURES[m], want[m]) end
redis.call('PEXPIRE', budget, idle)
redis.call('PEXPIRE', held, idle)
return {'ok'}
"""
)

# KEYS: the budget hash and its reservations. ARGV: reservation id, channel, idle ms, then the
# requests, tokens and dollars the call spent. Replaces the reservation by what was spent.
SETTLE = (
    _PRELUDE
    + _BUDGET
    + """
local budget, held = KEYS[1], KEYS[2]
local id, channel, idle = ARGV[1], ARGV[2], tonumber(ARGV[3])
local spent = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local amounts = redis.call('HGET', budget, 'r:' .. id)
local field = 'held:'
if not amounts then
  amounts = redis.call('HGET', budget, 'x:' .. id)  -- its lease lapsed and it was charged in full
  field = 'spent:'
end
if amounts then
  local tokens, cost = string.match(amounts, '(%S+) (%S+)')
  local reserved = {1, tonumber(tokens), tonumber(cost)}
  for m = 1, 3 do redis.call('HINCRBYFLOAT', budget, field .. MEASURES[m], -reserved[m]) end
  redis.call('HDEL', budget, 'r:' .. id, 'x:' .. id)
end
redis.call('ZREM', held, id)
for m = 1, 3 do redis.call('HINCRBYFLOAT', budget, 'spent:' .. MEASURES[m], spent[m]) end
redis.call('PEXPIRE', budget, idle)
redis.call('PUBLISH', channel, 'b')
return 1
"""
)
