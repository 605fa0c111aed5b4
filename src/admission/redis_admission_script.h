// The Lua script that keeps the fleet's admission state in Redis (admission.backend: redis).
// One script, one operation per call (ARGV[1]), so every multi-step decision is atomic in Redis.
// The model is the in-process AdmissionPolicy's (admission_policy.h) (docs/admission.md), with
// wall-clock times in milliseconds (the caller's, or Redis's own TIME when the caller passes 0),
// never a process's steady clock. Keys (all under one prefix, one hash tag, so a cluster keeps them
// on one shard):
//   KEYS[1] slots      zset  viewer -> last refresh (ms)
//   KEYS[2] queue      zset  viewer -> ticket (FIFO order)
//   KEYS[3] renewals   zset  viewer -> last ticket renewal (ms)
//   KEYS[4] viewers    hash  viewer -> "bandwidth|anonymous|since_ms|address|account"
//   KEYS[5] state      hash  next_ticket, emulation, bw_sum, known, reserved, turnover, counters
//   KEYS[6] offers     hash  viewer -> "deadline_ms|cost_bps": the reserved head of the queue
//   KEYS[7] addresses  hash  "a|<ip>" anonymous viewers, "t|<ip>" tickets per client address,
//                            "u|<account>" streams (admitted or queued) per account
// ARGV: op, now_ms, max_streams, max_traffic_mbps, idle_ms, grace_ms, reservation_ms,
//       retry_after_ms, max_anonymous_per_address, max_tickets_per_address, max_entries, op args...
#pragma once

namespace admission {

inline constexpr const char* kRedisAdmissionScript = R"lua(
local S, Q, R, V, ST, O, A = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local op = ARGV[1]
local now = tonumber(ARGV[2])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local L = {streams = tonumber(ARGV[3]), traffic = tonumber(ARGV[4]) * 1e6, idle = tonumber(ARGV[5]),
           grace = tonumber(ARGV[6]), reserve = tonumber(ARGV[7]), retry = tonumber(ARGV[8]),
           anon = tonumber(ARGV[9]), tickets = tonumber(ARGV[10]), entries = tonumber(ARGV[11])}
local MAX_STEPS = 1000  -- bound on the work one call does (expiries, grants)

local function sget(f) return tonumber(redis.call('HGET', ST, f) or '0') or 0 end
local function sinc(f, d) redis.call('HINCRBY', ST, f, d) end

-- Balancers' clocks differ a little: time in the store never goes back.
local last_now = sget('last_now')
if now < last_now then now = last_now end
local emulation = sget('emulation') == 1
local bw_sum = sget('bw_sum')
local known = sget('known')
local reserved = sget('reserved')
local active = redis.call('ZCARD', S)

local function finish()
  redis.call('HSET', ST, 'bw_sum', bw_sum, 'known', known, 'reserved', reserved, 'last_now', now)
end

local function info(key)
  local v = redis.call('HGET', V, key)
  if not v then return nil end
  local bw, anon, since, addr, acct = string.match(v, '^(%d+)|(%d)|(%d+)|([^|]*)|(.*)$')
  if not bw then
    -- Written before accounts were counted: no account.
    bw, anon, since, addr = string.match(v, '^(%d+)|(%d)|(%d+)|(.*)$')
    acct = ''
  end
  if not bw then return nil end
  return {bw = tonumber(bw), anon = anon == '1', since = tonumber(since), addr = addr, acct = acct}
end
local function put_info(key, i)
  redis.call('HSET', V, key, string.format('%d|%d|%d|%s|%s', i.bw, i.anon and 1 or 0, i.since,
                                           i.addr, i.acct or ''))
end
local function count_add(field, d)
  if redis.call('HINCRBY', A, field, d) <= 0 then redis.call('HDEL', A, field) end
end
local function addr_add(i, prefix, d)
  if i == nil or i.addr == '' then return end
  count_add(prefix .. i.addr, d)
end
local function account_add(i, d)
  if i == nil or (i.acct or '') == '' then return end
  count_add('u|' .. i.acct, d)
end

local function mean() if known == 0 then return 0 end return bw_sum / known end
local function estimate() return bw_sum + (active - known) * mean() end
local function account(bw, sign)
  active = active + sign
  if bw > 0 then bw_sum = bw_sum + sign * bw; known = known + sign end
end
local function cost_of(bw) if bw > 0 then return bw end return mean() end
local function fits(streams, add_bps)
  if L.streams > 0 and active + streams > L.streams then return false end
  if L.traffic > 0 and estimate() + add_bps > L.traffic + 1 then return false end
  return true
end

-- Slot turnover, as TurnoverMeter in admission_structures.h: a decayed count of the frees after
-- a first one that starts the clock (anew after 5 minutes without a free), the latest left out;
-- the rate is unknown (nil) until 10 frees followed the first and 30 s have passed since it.
local function record_free(at)
  local tsum = sget('t_sum')
  local tlast = sget('t_last')
  local tcount = sget('t_count')
  if tcount == 0 or (at >= tlast and at - tlast > 300000) then
    tsum = 0; tlast = at; tcount = 0
    redis.call('HSET', ST, 't_first', at)
  elseif at >= tlast then tsum = tsum * math.exp(-(at - tlast) / 60000) + 1; tlast = at
  else tsum = tsum + math.exp(-(tlast - at) / 60000) end
  redis.call('HSET', ST, 't_sum', tsum, 't_last', tlast, 't_count', tcount + 1)
end
local function rate()
  local observed = (now - sget('t_first')) / 1000
  if sget('t_count') <= 10 or observed < 30 then return nil end
  local tlast = sget('t_last')
  local latest = 1
  if now > tlast then latest = math.exp(-(now - tlast) / 60000) end
  local current = math.max(0, sget('t_sum') * latest - latest)
  return current / (60 * (1 - math.exp(-observed / 60)))
end
-- Whole seconds, or -1 while the free rate is unknown.
local function wait_s(position)
  local r = rate()
  if not r or r <= 0 then return -1 end
  local room = math.huge
  if L.streams > 0 then room = L.streams - active end
  local unit = mean()
  if L.traffic > 0 and unit > 0 then room = math.min(room, math.floor((L.traffic - estimate()) / unit)) end
  if emulation then room = math.min(room, 0) end
  local frees = math.max(1, position - room)
  local w = math.min(frees / r, 86400)
  if w <= 0 then return 0 end
  return math.ceil(w)
end

local function offer_parts(o)
  local deadline, cost = string.match(o, '^([^|]*)|(.*)$')
  return tonumber(deadline), tonumber(cost)
end
local function leave_queue(key, i)
  local o = redis.call('HGET', O, key)
  if o then
    local _, cost = offer_parts(o)
    redis.call('HDEL', O, key)
    reserved = reserved - cost
    if redis.call('HLEN', O) == 0 then reserved = 0 end
  end
  redis.call('ZREM', Q, key)
  redis.call('ZREM', R, key)
  addr_add(i, 't|', -1)
end
local function forget(key, i)
  redis.call('HDEL', V, key)
  if i and i.anon then addr_add(i, 'a|', -1) end
  account_add(i, -1)
end
local function activate(key, i)
  redis.call('ZADD', S, now, key)
  account(i.bw, 1)
  i.since = now
  put_info(key, i)
  sinc('c_admitted', 1)
end
local function free_slot(key, i, at)
  redis.call('ZREM', S, key)
  account(i and i.bw or 0, -1)
  record_free(at)
  forget(key, i)
end

-- Keeps positions 1..HLEN(offers) of the queue reserved for as much room as the limits leave.
local function reconcile()
  local offers = redis.call('HLEN', O)
  local qlen = redis.call('ZCARD', Q)
  local steps = 0
  while offers > 0 and (emulation or not fits(offers, reserved)) and steps < MAX_STEPS do
    local last = redis.call('ZRANGE', Q, offers - 1, offers - 1)[1]
    local o = last and redis.call('HGET', O, last)
    if not o then break end
    local _, cost = offer_parts(o)
    redis.call('HDEL', O, last)
    reserved = reserved - cost
    offers = offers - 1
    steps = steps + 1
  end
  if offers == 0 then reserved = 0 end
  while not emulation and offers < qlen and fits(offers + 1, reserved) and steps < MAX_STEPS do
    local nxt = redis.call('ZRANGE', Q, offers, offers)[1]
    if not nxt then break end
    local i = info(nxt)
    local cost = cost_of(i and i.bw or 0)
    if not fits(offers + 1, reserved + cost) then break end
    redis.call('HSET', O, nxt, string.format('%d|%.17g', now + L.reserve, cost))
    reserved = reserved + cost
    offers = offers + 1
    steps = steps + 1
  end
end

local function expire()
  local due = redis.call('ZRANGEBYSCORE', S, '-inf', now - L.idle, 'WITHSCORES', 'LIMIT', 0, MAX_STEPS)
  for j = 1, #due, 2 do
    free_slot(due[j], info(due[j]), tonumber(due[j + 1]) + L.idle)
    sinc('c_slots_expired', 1)
  end
  local stale = redis.call('ZRANGEBYSCORE', R, '-inf', now - L.grace, 'LIMIT', 0, MAX_STEPS)
  for _, key in ipairs(stale) do
    local i = info(key)
    leave_queue(key, i)
    forget(key, i)
    sinc('c_tickets_expired', 1)
  end
  for _ = 1, MAX_STEPS do
    local head = redis.call('ZRANGE', Q, 0, 0)[1]
    local o = head and redis.call('HGET', O, head)
    if not o then break end
    local deadline = offer_parts(o)
    if deadline > now then break end
    local i = info(head)
    leave_queue(head, i)
    forget(head, i)
    sinc('c_reservations_lapsed', 1)
  end
  reconcile()
end

local function queued(ticket, position)
  local w = wait_s(position)
  local cap = math.max(1, math.ceil(L.retry / 1000))
  local retry = cap
  if w >= 0 then retry = math.min(math.max(w, 1), cap) end
  return {2, tonumber(ticket), position, w, retry}
end

local function set_bandwidth(key, bw, is_active)
  if bw <= 0 then return false end
  local i = info(key)
  if not i or i.bw == bw then return false end
  if is_active then account(i.bw, -1); account(bw, 1) end
  i.bw = bw
  put_info(key, i)
  return true
end

if op == 'decide' then
  expire()
  local key, bw, addr, anon = ARGV[12], tonumber(ARGV[13]), ARGV[14], ARGV[15] == '1'
  local acct, per_account = ARGV[16] or '', tonumber(ARGV[17] or '0')
  if redis.call('ZSCORE', S, key) then
    redis.call('ZADD', S, now, key)
    if set_bandwidth(key, bw, true) then reconcile() end
    finish()
    return {1}
  end
  local ticket = redis.call('ZSCORE', Q, key)
  if ticket then
    redis.call('ZADD', R, now, key)
    if set_bandwidth(key, bw, false) then reconcile() end
    if redis.call('HEXISTS', O, key) == 1 then
      local i = info(key) or {bw = bw, anon = anon, since = now, addr = '', acct = ''}
      leave_queue(key, i)
      activate(key, i)
      sinc('c_admitted_from_queue', 1)
      reconcile()
      finish()
      return {1}
    end
    local position = redis.call('ZRANK', Q, key) + 1
    finish()
    return queued(ticket, position)
  end
  local qlen = redis.call('ZCARD', Q)
  if L.entries > 0 and active + qlen >= L.entries then
    sinc('c_refused_full', 1); finish(); return {4, 3}
  end
  if acct ~= '' and per_account > 0 and tonumber(redis.call('HGET', A, 'u|' .. acct) or '0') >= per_account then
    sinc('c_refused_account', 1); finish(); return {4, 4}
  end
  local offers = redis.call('HLEN', O)
  local admit_now = not emulation and offers == qlen and fits(offers + 1, reserved + cost_of(bw))
  if addr ~= '' then
    if anon and L.anon > 0 and tonumber(redis.call('HGET', A, 'a|' .. addr) or '0') >= L.anon then
      sinc('c_refused_address', 1); finish(); return {4, 1}
    end
    if not admit_now and L.tickets > 0 and tonumber(redis.call('HGET', A, 't|' .. addr) or '0') >= L.tickets then
      sinc('c_refused_address', 1); finish(); return {4, 2}
    end
  end
  local i = {bw = bw, anon = anon, since = now, addr = addr, acct = acct}
  if anon then addr_add(i, 'a|', 1) end
  account_add(i, 1)
  if admit_now then
    activate(key, i)
    finish()
    return {1}
  end
  put_info(key, i)
  local t = redis.call('HINCRBY', ST, 'next_ticket', 1)
  redis.call('ZADD', Q, t, key)
  redis.call('ZADD', R, now, key)
  addr_add(i, 't|', 1)
  sinc('c_tickets_issued', 1)
  finish()
  return queued(t, qlen + 1)
elseif op == 'heartbeat' then
  -- Slots this balancer's viewers refreshed since its last batch. A slot Redis does not know
  -- (Redis restarted empty, or expired it in a gap) is restored: admitted viewers are never cut off.
  local restored = 0
  for j = 12, #ARGV - 1, 2 do
    local key, bw = ARGV[j], tonumber(ARGV[j + 1])
    if redis.call('ZSCORE', S, key) then
      redis.call('ZADD', S, now, key)
      set_bandwidth(key, bw, true)
    elseif not redis.call('ZSCORE', Q, key) then
      local i = {bw = bw, anon = false, since = now, addr = '', acct = ''}
      redis.call('ZADD', S, now, key)
      account(bw, 1)
      put_info(key, i)
      restored = restored + 1
    end
  end
  expire()
  finish()
  return {restored}
elseif op == 'emulation' then
  local want = ARGV[12]
  local on = emulation
  if want == 'on' then on = true elseif want == 'off' then on = false else on = not emulation end
  local changed = on ~= emulation
  emulation = on
  redis.call('HSET', ST, 'emulation', on and 1 or 0)
  expire()
  finish()
  return {on and 1 or 0, changed and 1 or 0}
elseif op == 'release' then
  -- The viewer stops watching: its slot is freed (counted as turnover) or its ticket dropped.
  expire()
  local key = ARGV[12]
  local i = info(key)
  local released = 0
  if redis.call('ZSCORE', S, key) then
    free_slot(key, i, now)
    released = 1
  elseif redis.call('ZSCORE', Q, key) then
    leave_queue(key, i)
    forget(key, i)
    released = 1
  end
  if released == 1 then
    sinc('c_released', 1)
    reconcile()
  end
  finish()
  return {released}
elseif op == 'status' then
  expire()
  local qlen = redis.call('ZCARD', Q)
  local offers = redis.call('HLEN', O)
  local head_wait = 0
  local head = redis.call('ZRANGE', Q, 0, 0)[1]
  if head then
    local i = info(head)
    if i then head_wait = math.ceil(math.max(0, now - i.since) / 1000) end
  end
  local next_wait = 0
  if not (not emulation and offers == qlen and fits(offers + 1, reserved + mean())) then next_wait = wait_s(qlen + 1) end
  finish()
  return {active, qlen, offers, emulation and 1 or 0, head_wait, next_wait,
          tostring(bw_sum), known, tostring(estimate()), tostring(rate() or -1),
          sget('c_admitted'), sget('c_admitted_from_queue'), sget('c_tickets_issued'), sget('c_slots_expired'),
          sget('c_tickets_expired'), sget('c_reservations_lapsed'), sget('c_refused_address'),
          sget('c_refused_full'), now, sget('c_released'), sget('c_refused_account')}
end
return redis.error_reply('unknown admission op ' .. tostring(op))
)lua";

}  // namespace admission
