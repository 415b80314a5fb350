"""The Lua scripts behind the Redis broker, and the key layout they share.

Every decision that must hold across instances happens inside one script, so
Redis runs it atomically: no other publish, connect or disconnect can fall
between the presence check, the PUBLISH and the write to history or queue.
All times come from Redis `TIME`, so the instances' own clocks never matter.

One id sequence. Every event id, for every client, topic and broadcast, comes
from `next_id` over the one key `cp:ids`: `<ms>-<seq>` with ms = max(TIME,
last ms) and seq counting within that ms. Ids therefore increase across all
streams in the order the scripts ran, which is also the order in which their
PUBLISHes reach every subscriber; history entries are XADDed with that
explicit id. A connection listening to its client stream and some topics can
then be replayed exactly from the browser's one Last-Event-ID (sse/replay.py).

Keys (prefix `cp:`; `<c>` is a client id, `<m>` a connection `<instance>|<id>`):

    cp:presence:<c>    ZSET  m -> expiry ms: the client's connections, cluster-wide
    cp:history:<c>     STREAM  fields n (event name), d (JSON data); ids are the event ids
    cp:queue:<c>       LIST  "<expiry ms> <frame>": events waiting for the next connection
    cp:online          ZSET  c -> expiry ms: clients with a live connection (status totals)
    cp:connections     ZSET  m -> expiry ms: every live connection (status totals)
    cp:ids             HASH  ms, seq: the last event id issued, on any stream; since: when this
                       Redis's data started, after_loss: whether it started by a loss (PUBLISH);
                       alive_at: the last presence refresh or catch-up of any instance, gap_at:
                       when one came after a gap longer than presence lives (note_alive)
    cp:topic-presence:<t>, cp:topic-history:<t>, channel cp:topic:<t>: the same for topics
                       (sse/redis_topics.py); topic presence is not counted in cp:online/cp:connections
    cp:ack:<c>:<id>    STRING  a browser's acknowledgement, kept briefly (sse/redis_acks.py)
    channel cp:client:<c>, channel cp:broadcast, channel cp:acks

Most of this module is Lua, kept next to the key layout it depends on.
Scripts touch keys they compute from the prefix, so they need one Redis (or a
primary with replicas / Sentinel), not Redis Cluster. Exclusive XRANGE needs
Redis >= 6.2.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

PREFIX = "cp:"

LUA_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function frame(id, name, data)
  return 'id: ' .. id .. '\\nevent: ' .. name .. '\\ndata: ' .. data .. '\\n\\n'
end
local function next_id(ids, now)
  local last = redis.call('HMGET', ids, 'ms', 'seq')
  local ms, seq = tonumber(last[1]) or 0, tonumber(last[2]) or -1
  if now > ms then ms, seq = now, 0 else seq = seq + 1 end
  redis.call('HSET', ids, 'ms', string.format('%d', ms), 'seq', string.format('%d', seq))
  return string.format('%d-%d', ms, seq)
end
-- Keep a delivered event for replay. XADD with the explicit id cannot fail once
-- every instance issues ids from next_id; during a rolling upgrade an older
-- instance may have added a larger one, and then the stream picks its own.
local function keep(history, id, name, data, size, ttl_ms)
  if not pcall(redis.call, 'XADD', history, id, 'n', name, 'd', data) then
    redis.call('XADD', history, '*', 'n', name, 'd', data)
  end
  redis.call('XTRIM', history, 'MAXLEN', size)
  redis.call('PEXPIRE', history, ttl_ms)
end
local function read_history(history, from, ttl_ms, now, out)
  if from == '' then return end
  local oldest = now - tonumber(ttl_ms)
  for _, entry in ipairs(redis.call('XRANGE', history, from, '+')) do
    local id, fields = entry[1], entry[2]
    if tonumber(string.match(id, '^(%d+)')) >= oldest then
      out[#out + 1] = id
      out[#out + 1] = frame(id, fields[2], fields[4])
    end
  end
end
local function head_of(history)
  local last = redis.call('XREVRANGE', history, '+', '-', 'COUNT', 1)
  if #last > 0 then return last[1][1] end
  return '0-0'
end
-- Whether Redis's data was lost (a restart without persistence) less than grace_ms
-- ago: told by `ids` `since` against the `since` this instance saw (PUBLISH, below).
local function within_loss_grace(ids, now, grace_ms, seen_since)
  local data = redis.call('HMGET', ids, 'since', 'after_loss', 'gap_at')
  local since, after_loss = data[1], data[2]
  if data[3] and now - tonumber(data[3]) < tonumber(grace_ms) then return true end
  if seen_since ~= '' and since ~= seen_since and not after_loss then
    if not since then
      since = string.format('%d', now)
      redis.call('HSET', ids, 'since', since)
    end
    redis.call('HSET', ids, 'after_loss', '1')
    after_loss = '1'
  end
  return after_loss and now - tonumber(since) < tonumber(grace_ms)
end
-- Called as each instance refreshes its presence (every heartbeat) or catches up: when
-- nobody did for longer than presence lives (lapse_ms), every presence has expired
-- though the streams may be open (Redis restarted from its persistence, or unreachable
-- from every instance). That moment starts the same grace as a loss of the data, if
-- streams may be open: the instance noting it was running before (`ran_before`), or
-- connections are still registered (`connections`, expired: instances that went
-- silent, stalled or cut off). A cold start after every instance stopped (each
-- removing its connections) is no outage: no stream is open.
local function note_alive(ids, connections, now, lapse_ms, ran_before)
  local alive_at = redis.call('HGET', ids, 'alive_at')
  local lapsed = alive_at and now - tonumber(alive_at) > tonumber(lapse_ms)
  if lapsed and (ran_before or redis.call('ZCARD', connections) > 0) then
    redis.call('HSET', ids, 'gap_at', string.format('%d', now))
  end
  redis.call('HSET', ids, 'alive_at', string.format('%d', now))
end
-- A fenced publish (sse.broker.Fence): one more key and three more arguments.
-- It runs only while the key's value starts with the holder, and leaves its
-- answer there (the record's JSON up to its answer, then the answer) for the lifetime.
local function fenced_run(base_keys, publish)
  if #KEYS == base_keys then return publish() end
  local fence, holder, record, lifetime_ms = KEYS[#KEYS], ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV]
  local held = redis.call('GET', fence)
  if not held or string.sub(held, 1, #holder) ~= holder then return {'fenced', '', 0} end
  local result = publish()
  if result[1] ~= 'queue_full' then
    local answer = {delivered = result[3], queued = result[1] == 'queued', eventId = result[2]}
    if result[2] == '' then answer.eventId = cjson.null end
    redis.call('SET', fence, record .. cjson.encode(answer) .. '}', 'PX', lifetime_ms)
  end
  return result
end
"""

# KEYS: presence, history, queue, ids[, fence]. ARGV: channel, name, data, history_size,
# history_ttl_ms, queue_if_offline (0/1), queue_ttl_ms, queue_size, loss_grace_ms,
# seen_since[, fence arguments]. Returns {outcome, id, delivered}; outcome: delivered |
# queued | offline | queue_full | fenced.
#
# Only a client with a joined connection (presence) is published to live. A
# subscriber that has not joined, a tab between its SUBSCRIBE and its JOIN (or an
# instance stalled past its presence), would receive the frame after its JOIN had
# taken the stream head as its opening, drop it as already seen, and the answer
# would say delivered. Queued instead, the JOIN that follows hands it over.
#
# A Redis that lost its data while instances held streams (a restart without
# persistence) has no presence until each instance registers its streams again (on
# its reconnect, or at its next heartbeat). Within loss_grace_ms of such a loss, an
# event for a client with no known connection is published live if an instance has
# subscribed to it again, and otherwise queued rather than answered offline: it may
# well have a connection, and its instance's catch-up hands it the queue.
# A loss is told by cp:ids `since`, the time the data started, which the first
# catch-up after it records (MARK_DATA_START): an instance that saw another value
# (seen_since) before knows the data was lost, and marks it (`after_loss`). A
# first deployment on an empty Redis is no loss: no instance saw anything before.
PUBLISH = LUA_HELPERS + """
return fenced_run(4, function()
local now = now_ms()
local connections = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
local queue_if_offline = ARGV[6] == '1'
local live = connections > 0
if not live then
  if within_loss_grace(KEYS[4], now, ARGV[9], ARGV[10]) then
    live = redis.call('PUBSUB', 'NUMSUB', ARGV[1])[2] > 0
    queue_if_offline = true
  elseif not queue_if_offline then
    return {'offline', '', 0}
  end
end
local id = next_id(KEYS[4], now)
local message = frame(id, ARGV[2], ARGV[3])
if live then
  local receivers = redis.call('PUBLISH', ARGV[1], message)
  if receivers > 0 then
    keep(KEYS[2], id, ARGV[2], ARGV[3], ARGV[4], ARGV[5])
    -- Joined connections count, not subscribed instances (one may be stalled past its
    -- presence); subscribers only when presence is gone with Redis's data.
    return {'delivered', id, connections > 0 and connections or receivers}
  end
end
-- Nobody received it (or it was not published): not kept in history; the queue below is its one copy.
while true do
  local oldest = redis.call('LINDEX', KEYS[3], 0)
  if not oldest or tonumber(string.match(oldest, '^(%d+) ')) >= now then break end
  redis.call('LPOP', KEYS[3])
end
if redis.call('LLEN', KEYS[3]) >= tonumber(ARGV[8]) then
  return {'queue_full', '', 0}
end
redis.call('RPUSH', KEYS[3], string.format('%d', now + tonumber(ARGV[7])) .. ' ' .. message)
redis.call('PEXPIRE', KEYS[3], ARGV[7])
return {'queued', id, 0}
end)
"""

# KEYS: ids, connections. ARGV: the `since` this instance saw before ('' if none), presence_ttl_ms.
# Records when this Redis's data started, and whether that start was a loss (see
# PUBLISH); returns `since`. A start other than the one this instance saw is a loss,
# whoever recorded it: an instance that never saw Redis before (started during the
# outage) may have been first.
MARK_DATA_START = LUA_HELPERS + """
local now = now_ms()
redis.call('HSETNX', KEYS[1], 'since', string.format('%d', now))
local since = redis.call('HGET', KEYS[1], 'since')
if ARGV[1] ~= '' and since ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'after_loss', '1')
end
note_alive(KEYS[1], KEYS[2], now, ARGV[2], ARGV[1] ~= '')
return since
"""

# KEYS: presence, history, queue, online, connections. ARGV: client,
# presence_ttl_ms, history_from (inclusive id, '' for no history),
# history_ttl_ms, per_client cap (0: none), members...  Returns {head, {id,
# frame, ...}, {frame, ...}}, or {'full'} (and changes nothing) when the
# members would take the client's live connections past the cap.
JOIN = LUA_HELPERS + """
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)  -- tabs of instances gone without a word
local cap = tonumber(ARGV[5])
if cap > 0 and redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') + #ARGV - 5 > cap then
  return {'full'}
end
local expires = now + tonumber(ARGV[2])
for i = 6, #ARGV do
  redis.call('ZADD', KEYS[1], expires, ARGV[i])
  redis.call('ZADD', KEYS[5], expires, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[4], expires, ARGV[1])
local history = {}
read_history(KEYS[2], ARGV[3], ARGV[4], now, history)
local queued = {}
for _, item in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local expiry, message = string.match(item, '^(%d+) (.*)$')
  if tonumber(expiry) >= now then queued[#queued + 1] = message end
end
redis.call('DEL', KEYS[3])
return {head_of(KEYS[2]), history, queued}
"""

# Connections that ended, as many as came together. KEYS: online, connections.
# ARGV: prefix, then client, member pairs.
LEAVE = LUA_HELPERS + """
local now = now_ms()
for i = 2, #ARGV, 2 do
  local presence = ARGV[1] .. 'presence:' .. ARGV[i]
  redis.call('ZREM', presence, ARGV[i + 1])
  redis.call('ZREM', KEYS[2], ARGV[i + 1])
  if redis.call('ZCOUNT', presence, '(' .. now, '+inf') == 0 then
    redis.call('DEL', presence)
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 1
"""

# KEYS: online, connections, ids. ARGV: prefix, presence_ttl_ms, ran_before ('1' if this
# instance saw Redis before this refresh, else ''), then client, member pairs.
# Returns {client, frame, ...}: the queue of each client one of whose streams had
# lapsed (its instance stalled past its presence). Events for it were queued
# meanwhile, as for a client with no stream; the stream is open, so it takes them now.
REFRESH = LUA_HELPERS + """
local now = now_ms()
note_alive(KEYS[3], KEYS[2], now, ARGV[2], ARGV[3] ~= '')
local expires = now + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local handed = {}
local pruned = {}
for i = 4, #ARGV, 2 do
  local presence = ARGV[1] .. 'presence:' .. ARGV[i]
  local score = redis.call('ZSCORE', presence, ARGV[i + 1])
  if not pruned[presence] then
    -- Another instance's expired tabs: this one keeps the key alive, which would keep them.
    redis.call('ZREMRANGEBYSCORE', presence, '-inf', now)
    pruned[presence] = true
  end
  redis.call('ZADD', presence, expires, ARGV[i + 1])
  redis.call('PEXPIRE', presence, ARGV[2])
  redis.call('ZADD', KEYS[1], expires, ARGV[i])
  redis.call('ZADD', KEYS[2], expires, ARGV[i + 1])
  if not score or tonumber(score) <= now then
    local queue = ARGV[1] .. 'queue:' .. ARGV[i]
    for _, item in ipairs(redis.call('LRANGE', queue, 0, -1)) do
      local expiry, message = string.match(item, '^(%d+) (.*)$')
      if tonumber(expiry) >= now then
        handed[#handed + 1] = ARGV[i]
        handed[#handed + 1] = message
      end
    end
    redis.call('DEL', queue)
  end
end
return handed
"""

# KEYS: presence.
COUNT = LUA_HELPERS + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms(), '+inf')
"""

# KEYS: online, connections.
TOTALS = LUA_HELPERS + """
local now = '(' .. now_ms()
return {redis.call('ZCOUNT', KEYS[1], now, '+inf'), redis.call('ZCOUNT', KEYS[2], now, '+inf')}
"""

# KEYS: ids, connections[, fence]. ARGV: channel, name, data[, fence arguments].
# Returns {outcome, id, delivered}; outcome: delivered | fenced.
BROADCAST = LUA_HELPERS + """
return fenced_run(2, function()
local id = next_id(KEYS[1], now_ms())
local receivers = redis.call('PUBLISH', ARGV[1], frame(id, ARGV[2], ARGV[3]))
if receivers == 0 then return {'delivered', id, 0} end
return {'delivered', id, redis.call('ZCOUNT', KEYS[2], '(' .. now_ms(), '+inf')}
end)
"""


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = PREFIX

    def presence(self, client_id: str) -> str:
        return f"{self.prefix}presence:{client_id}"

    def history(self, client_id: str) -> str:
        return f"{self.prefix}history:{client_id}"

    def queue(self, client_id: str) -> str:
        return f"{self.prefix}queue:{client_id}"

    def channel(self, client_id: str) -> str:
        return f"{self.prefix}client:{client_id}"

    def client_of(self, channel: str) -> str | None:
        marker = f"{self.prefix}client:"
        return channel[len(marker) :] if channel.startswith(marker) else None

    @property
    def online(self) -> str:
        return f"{self.prefix}online"

    @property
    def connections(self) -> str:
        return f"{self.prefix}connections"

    @property
    def ids(self) -> str:
        return f"{self.prefix}ids"

    def topic_presence(self, topic: str) -> str:
        return f"{self.prefix}topic-presence:{topic}"

    def topic_history(self, topic: str) -> str:
        return f"{self.prefix}topic-history:{topic}"

    def topic_channel(self, topic: str) -> str:
        return f"{self.prefix}topic:{topic}"

    def topic_of(self, channel: str) -> str | None:
        marker = f"{self.prefix}topic:"
        return channel[len(marker) :] if channel.startswith(marker) else None

    @property
    def broadcast_channel(self) -> str:
        return f"{self.prefix}broadcast"

    def health(self, instance_id: str) -> str:
        return f"{self.prefix}health:{instance_id}"

    def ack(self, client_id: str, event_id: str) -> str:
        return f"{self.prefix}ack:{client_id}:{event_id}"

    @property
    def acks_channel(self) -> str:
        return f"{self.prefix}acks"


class BrokerScripts:
    """The scripts registered on one client; redis-py reloads them after NOSCRIPT
    (a restarted Redis has forgotten them)."""

    def __init__(self, redis: Redis) -> None:
        self.publish: AsyncScript = redis.register_script(PUBLISH)
        self.join: AsyncScript = redis.register_script(JOIN)
        self.leave: AsyncScript = redis.register_script(LEAVE)
        self.refresh: AsyncScript = redis.register_script(REFRESH)
        self.count: AsyncScript = redis.register_script(COUNT)
        self.totals: AsyncScript = redis.register_script(TOTALS)
        self.broadcast: AsyncScript = redis.register_script(BROADCAST)
        self.mark_data_start: AsyncScript = redis.register_script(MARK_DATA_START)
