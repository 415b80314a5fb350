"""Topics in Redis: publish, join, presence and leave, as Lua scripts.

A topic is addressed like a client (see sse/redis.py): every instance with a
local connection listening to topic `<t>` subscribes to channel
`cp:topic:<t>`; `cp:topic-presence:<t>` (ZSET member -> expiry ms, refreshed
every heartbeat like a client's presence, but never counted in the client
totals) says how many connections listen cluster-wide; `cp:topic-history:<t>`
keeps delivered events for Last-Event-ID replay, with the same HISTORY_SIZE
and HISTORY_TTL_SECONDS as a client's history. Ids come from the broker's one
sequence (`next_id` in sse/redis_scripts.py).

Publishing to a topic nobody listens to sends and keeps nothing and answers
delivered 0: topics have no store-and-forward queue. "Listens" means a
joined connection (live presence), as for a client's events: a subscriber
between its SUBSCRIBE and its JOIN would receive the frame after its JOIN
took the topic's head as its opening, and drop it, while the answer said
delivered (review reproduction). Only within the grace after a Redis data
loss, when subscriptions come back before presence, does a subscribed
instance count. When presence is live but no instance received the
PUBLISH (an instance just died, its connections are reconnecting with
Last-Event-ID), the event is kept in history so they replay it; the answer
then says delivered 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from sse.batched_calls import BatchedCalls
from sse.broker import Delivery, Fence
from sse.events import Event
from sse.presence import MemberIfOpen
from sse.redis_calls import fenced_call, guarded
from sse.redis_scripts import LUA_HELPERS, RedisKeys
from sse.registry import Connection

# KEYS: topic presence, topic history, ids[, fence]. ARGV: channel, name, data,
# history_size, history_ttl_ms, loss_grace_ms, seen_since[, fence arguments]. Returns {outcome, id, delivered};
# outcome: delivered | kept | nobody | fenced.
PUBLISH_TOPIC = LUA_HELPERS + """
return fenced_run(3, function()
local now = now_ms()
local connections = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
if connections == 0 and not (within_loss_grace(KEYS[3], now, ARGV[6], ARGV[7]) and redis.call('PUBSUB', 'NUMSUB', ARGV[1])[2] > 0) then
  return {'nobody', '', 0}
end
local id = next_id(KEYS[3], now)
local receivers = redis.call('PUBLISH', ARGV[1], frame(id, ARGV[2], ARGV[3]))
keep(KEYS[2], id, ARGV[2], ARGV[3], ARGV[4], ARGV[5])
if receivers == 0 then return {'kept', id, 0} end
return {'delivered', id, connections > 0 and connections or receivers}  -- as PUBLISH counts
end)
"""

# KEYS: topic presence, topic history. ARGV: presence_ttl_ms, history_from
# (inclusive id, '' for no history), history_ttl_ms, members...
# Returns {head, {id, frame, ...}}.
JOIN_TOPIC = LUA_HELPERS + """
local now = now_ms()
if #ARGV > 3 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)  -- listeners of instances gone without a word
  local expires = now + tonumber(ARGV[1])
  for i = 4, #ARGV do redis.call('ZADD', KEYS[1], expires, ARGV[i]) end
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local history = {}
read_history(KEYS[2], ARGV[2], ARGV[3], now, history)
return {head_of(KEYS[2]), history}
"""

# KEYS: the topic presences of one connection. ARGV: member.
# ARGV: prefix, then topic, member pairs (connections that ended together: sse/batched_calls.py).
LEAVE_TOPICS = """
for i = 2, #ARGV, 2 do redis.call('ZREM', ARGV[1] .. 'topic-presence:' .. ARGV[i], ARGV[i + 1]) end
return 1
"""

# ARGV: prefix, presence_ttl_ms, then topic, member pairs. Expired listeners (of an
# instance that died, or a removal lost while Redis was away) are dropped from each
# topic named: the live ones keep the key from expiring, which would otherwise keep
# them for good.
REFRESH_TOPICS = LUA_HELPERS + """
local now = now_ms()
local expires = now + tonumber(ARGV[2])
local pruned = {}
for i = 3, #ARGV, 2 do
  local presence = ARGV[1] .. 'topic-presence:' .. ARGV[i]
  if not pruned[presence] then
    redis.call('ZREMRANGEBYSCORE', presence, '-inf', now)
    pruned[presence] = true
  end
  redis.call('ZADD', presence, expires, ARGV[i + 1])
  redis.call('PEXPIRE', presence, ARGV[2])
end
return 1
"""

REFRESH_BATCH = 500  # (topic, member) pairs per refresh script


@dataclass(frozen=True)
class TopicScripts:
    publish: AsyncScript
    join: AsyncScript
    leave: AsyncScript
    refresh: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> "TopicScripts":
        return cls(
            redis.register_script(PUBLISH_TOPIC),
            redis.register_script(JOIN_TOPIC),
            redis.register_script(LEAVE_TOPICS),
            redis.register_script(REFRESH_TOPICS),
        )


class RedisTopics:
    def __init__(self, redis: Redis, keys: RedisKeys, timeout_seconds: float, history_size: int, history_ttl_ms: int) -> None:
        self._scripts = TopicScripts.register(redis)
        self._keys = keys
        self._timeout = timeout_seconds
        self._history_size = history_size
        self._history_ttl_ms = history_ttl_ms
        self._leaves = BatchedCalls(self._leave_many, item_size=2, batch_size=REFRESH_BATCH, what="topic presence removal")

    async def publish(self, topic: str, event: Event, loss_grace_ms: int, seen_since: str, fence: Fence | None = None) -> Delivery:
        keys = [self._keys.topic_presence(topic), self._keys.topic_history(topic), self._keys.ids]
        args = [
            self._keys.topic_channel(topic), event.name, event.encode_data(), self._history_size, self._history_ttl_ms,
            loss_grace_ms, seen_since,
        ]
        outcome, event_id, delivered = await fenced_call(self._scripts.publish, keys, args, fence, self._timeout)
        if outcome == b"nobody":
            return Delivery(None, 0)
        return Delivery(event_id.decode(), int(delivered))

    def join_call(self, topic: str, members: list[str], presence_ttl_ms: int, history_from: str) -> dict:
        """Arguments of JOIN_TOPIC (also run inside pipelines): register `members`
        as listeners and read the topic's history from `history_from` on."""
        keys = [self._keys.topic_presence(topic), self._keys.topic_history(topic)]
        return {"keys": keys, "args": [presence_ttl_ms, history_from, self._history_ttl_ms, *members]}

    @property
    def join(self) -> AsyncScript:
        return self._scripts.join

    async def leave(self, topics: tuple[str, ...], member: str) -> None:
        """Never raises (an unremoved listener expires by itself)."""
        await self._leaves.add(*(part for topic in topics for part in (topic, member)))

    async def close(self) -> None:
        """Before Redis closes: the removal on its way finishes, no other is sent."""
        await self._leaves.close()

    async def _leave_many(self, pairs: list[str]) -> None:
        await guarded(self._scripts.leave(args=[self._keys.prefix, *pairs]), self._timeout)

    async def refresh(self, listeners: list[tuple[str, Connection]], member_if_open: MemberIfOpen, presence_ttl_ms: int) -> None:
        """Extend the expiry of the (topic, connection) listeners `member_if_open` names,
        asked as each batch goes: a connection that closed while an earlier batch waited
        on Redis would come back. Raises BrokerUnavailable."""
        for start in range(0, len(listeners), REFRESH_BATCH):
            batch = [(topic, member_if_open(connection)) for topic, connection in listeners[start : start + REFRESH_BATCH]]
            pairs = [item for topic, member in batch if member is not None for item in (topic, member)]
            if pairs:
                await guarded(self._scripts.refresh(args=[self._keys.prefix, presence_ttl_ms, *pairs]), self._timeout)
