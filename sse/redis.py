"""The Redis broker: many instances, one truthful answer (selected by REDIS_URL).

Delivery. Every instance subscribes to `cp:client:<id>` for each client with a
stream open on it (sse/redis_listener.py). A publish is one Lua script
(sse/redis_scripts.py, PUBLISH) that, atomically:

1. counts the client's live connections in its presence set (sse/presence.py)
   and, when there are none, the instances subscribed to its channel (PUBSUB
   NUMSUB: a stream that is opening, or whose presence a stalled heartbeat let
   lapse). Nobody and no `queue_if_offline`: answers "offline" and stores
   nothing, so a later reconnect never acts on a call answered
   CLIENT_NOT_CONNECTED. Except within two heartbeats of Redis losing its data
   while instances held streams (a restart without persistence), or of a gap
   longer than presence lives (no instance refreshed it: `note_alive`), when
   presence may not be back yet: then the event is queued (step 4);
2. takes the next id from the broker's one sequence (`<ms>-<seq>`, the wire
   id, increasing across every client and topic stream: `next_id` in
   sse/redis_scripts.py), encodes the frame once and PUBLISHes it;
3. PUBLISH's receiver count > 0 (some instance holds a connection and got
   it): keeps it in history (MAXLEN HISTORY_SIZE, expiry HISTORY_TTL_SECONDS)
   and answers delivered = the client's live connections cluster-wide (at
   least the number of receiving instances). Within the two heartbeats after
   an instance crash this can still count that instance's connections;
4. receiver count 0 but presence live, or `queue_if_offline`: the frame goes
   to the client's queue for QUEUE_TTL_SECONDS and the answer is `queued`.
   Presence without a receiver means the instance holding the stream has just
   died (its clients are reconnecting elsewhere, with Last-Event-ID) or lost
   Redis for a moment (it catches up when it is back), so the event is in
   transit, not lost, and the caller is told so: `queued: true, delivered: 0`.
   The first connection of the client claims the queue (JOIN below). An
   event nobody received is not kept in history: the queue is its one copy.

Reconnect without loss or repeats. A new stream first makes sure this
instance's SUBSCRIBE is confirmed, then one script (JOIN) registers its
presence, reads history after Last-Event-ID and claims the queue. Anything
published after the SUBSCRIBE reaches the connection live; anything before the
JOIN is in history or the queue. Live frames that arrived during the JOIN
round trip and are also in the replay are dropped (same bytes, same id;
sse/redis_fanout.py), so replay + live = each event exactly once, in order.
JOIN also holds MAX_CONNECTIONS_PER_CLIENT cluster-wide: it refuses (and
changes nothing) when the client's live presence is already at the cap, and
the stream is answered 429 as for the per-instance check. Counting and
registering in one script means two instances cannot both take the last slot.

Failures. Every Redis call has REDIS_TIMEOUT_SECONDS; a failure is
BrokerUnavailable (function calls answer UNAVAILABLE, `/readyz` 503, new
streams get a retry hint). Open streams stay open. The listener reconnects by
itself, subscribes again, re-registers the presence of every local connection
and replays, per client, what was published (queued) while it was away, before
any held-back live frame: `_catch_up`. Live frames the catch-up already sent
(same bytes) are skipped, as for a new stream.

Topics (sse/redis_topics.py). A connection may also listen to topics. Each
topic is addressed like a client: channel `cp:topic:<t>` subscribed while a
local connection listens, topic presence (so `delivered` counts listening
connections cluster-wide), topic history. The registry indexes connections by
topic as well (`deliver_topic`). A new stream subscribes to its client channel
and every topic channel (each confirmed; `PubSubListener.add` returns at once
for a channel already confirmed), then runs JOIN and one JOIN_TOPIC per topic
in one pipeline; the replay merges, by id, the client's history and queue and
every topic's history after Last-Event-ID. Because ids come from one sequence
and one pub/sub socket receives every channel's messages in the order the
scripts ran, live frames of all of a connection's streams arrive in id order
too: the de-duplication of replay vs live frames (per connection) and of
catch-up vs live frames (per channel) holds across streams, and a catch-up
offers each connection the merged frames of its client and topics in id
order (sse/redis_fanout.py).

Acknowledgements (sse/redis_acks.py) ride on the same listener (`cp:acks`).

This module is longer than most because this docstring carries the design;
the scripts it relies on are in sse/redis_scripts.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator

from redis.exceptions import RedisError

from sse.broker import BROKER_UNAVAILABLE, BrokerUnavailable, Delivery, Fence, QueueFull, Subscription, Totals
from sse.events import Event, is_future_id, parse_event_id
from sse.presence import RedisPresence
from sse.redis_acks import RedisAcks
from sse.redis_calls import fenced_call, guarded, redis_client
from sse.redis_fanout import LocalFanout
from sse.redis_listener import PubSubListener
from sse.redis_scripts import BrokerScripts, RedisKeys
from sse.redis_topics import RedisTopics
from sse.registry import Connection, ConnectionRefused, ConnectionRegistry
from sse.replay import IdentifiedFrame, frame_event_id, merge_replay, newest_id

if TYPE_CHECKING:
    from config.settings import Settings

logger = logging.getLogger("channel_push.redis")

MAX_STREAM_ID_PART = 2**64 - 1
CATCH_UP_BATCH = 200


HEALTH_PROBE_MS = 10_000  # the readiness probe's key lives this long


class RedisBroker:
    name = "redis"

    def __init__(self, settings: Settings, registry: ConnectionRegistry) -> None:
        assert settings.redis_url
        self.registry = registry
        self._keys = RedisKeys(settings.effective_redis_key_prefix)
        self._timeout = settings.redis_timeout_seconds
        self._history_size = settings.history_size
        self._history_ttl_ms = int(settings.history_ttl_seconds * 1000)
        self._queue_ttl_ms = int(settings.queue_ttl_seconds * 1000)
        self._queue_size = settings.queue_size
        self._per_client = settings.max_connections_per_client
        self._redis = redis_client(settings.redis_url, self._timeout)
        self._pubsub_redis = redis_client(settings.redis_url, self._timeout, commands=False)
        self._scripts = BrokerScripts(self._redis)
        presence_ttl_ms = int(2 * settings.heartbeat_seconds * 1000)
        # By then every live instance has registered its streams again (sse/redis_scripts.py, PUBLISH).
        self._loss_grace_ms = presence_ttl_ms
        self._seen_since = ""  # when Redis's data started, as of this instance's last catch-up
        self._presence = RedisPresence(self._scripts, self._keys, settings.instance_id, presence_ttl_ms, self._timeout)
        self._instance_id = settings.instance_id
        self._topics = RedisTopics(self._redis, self._keys, self._timeout, self._history_size, self._history_ttl_ms)
        self._listener = PubSubListener(
            self._pubsub_redis,
            [self._keys.broadcast_channel, self._keys.acks_channel],
            self._on_message,
            self._catch_up,
            self._timeout,
            idle_ping_seconds=settings.heartbeat_seconds,
        )
        self._fanout = LocalFanout(registry, self._keys)
        self._acks: RedisAcks | None = None

    async def start(self) -> None:
        await self._listener.start()
        await self._warn_of_eviction()

    async def _warn_of_eviction(self) -> None:
        """Say so at start when Redis may evict keys: presence, queued events, history and
        publish ids would vanish under memory pressure, without an error anywhere."""
        try:
            async with asyncio.timeout(self._timeout):
                config = await self._redis.config_get("maxmemory*")
        except (RedisError, OSError, TimeoutError):
            return  # unreachable (readiness says so), or CONFIG is disabled (managed Redis): nothing to check, nothing to log
        policy, limit = config.get("maxmemory-policy", "noeviction"), config.get("maxmemory", "0")
        if policy != "noeviction" and str(limit) != "0":
            logger.warning(
                "Redis maxmemory-policy is %s with maxmemory %s: under memory pressure Redis evicts this "
                "service's presence, queued events and publish ids without an error; set noeviction", policy, limit,
            )

    async def close(self) -> None:
        await self._presence.close()
        await self._topics.close()
        await self._listener.stop()
        await self._redis.aclose()
        await self._pubsub_redis.aclose()

    async def publish(
        self, client_id: str, event: Event, queue_if_offline: bool = False, fence: Fence | None = None
    ) -> Delivery:
        keys = [self._keys.presence(client_id), self._keys.history(client_id), self._keys.queue(client_id), self._keys.ids]
        args = [
            self._keys.channel(client_id),
            event.name,
            event.encode_data(),
            self._history_size,
            self._history_ttl_ms,
            int(queue_if_offline),
            self._queue_ttl_ms,
            self._queue_size,
            self._loss_grace_ms,
            self._seen_since,
        ]
        outcome, event_id, delivered = await fenced_call(self._scripts.publish, keys, args, fence, self._timeout)
        if outcome == b"queue_full":
            raise QueueFull(f"{self._queue_size} events already wait for client {client_id}")
        if outcome == b"offline":
            return Delivery(None, 0)
        return Delivery(event_id.decode(), int(delivered), queued=outcome == b"queued")

    async def broadcast(self, event: Event, fence: Fence | None = None) -> Delivery:
        keys = [self._keys.ids, self._keys.connections]
        args = [self._keys.broadcast_channel, event.name, event.encode_data()]
        _, event_id, delivered = await fenced_call(self._scripts.broadcast, keys, args, fence, self._timeout)
        return Delivery(event_id.decode(), int(delivered))

    async def publish_topic(self, topic: str, event: Event, fence: Fence | None = None) -> Delivery:
        return await self._topics.publish(topic, event, self._loss_grace_ms, self._seen_since, fence)

    async def connection_count(self, client_id: str) -> int:
        return await self._presence.count(client_id)

    async def totals(self) -> Totals:
        return await self._presence.totals()

    async def is_healthy(self) -> bool:
        if not self._listener.connected:
            return False
        try:
            # A write, not a PING: a Redis out of memory (noeviction) answers PING and
            # refuses every publish and connect, and the instance must not look ready.
            await guarded(self._redis.set(self._keys.health(self._instance_id), b"1", px=HEALTH_PROBE_MS), self._timeout)
        except BrokerUnavailable:
            return False
        return True

    @asynccontextmanager
    async def subscribe(
        self, client_id: str, last_event_id: str | None, topics: tuple[str, ...] = ()
    ) -> AsyncIterator[Subscription]:
        registered = self.registry.open(client_id, on_last=self._stop_listening, topics=topics, on_last_topic=self._stop_listening_topic)
        async with registered as connection:
            # Every connection waits for the client's channel to be confirmed, not only
            # the client's first here: a second tab arriving while the first one's
            # SUBSCRIBE is in flight would otherwise JOIN, and be counted as reachable,
            # before this instance can receive its events (or stay open with no
            # subscription at all when that SUBSCRIBE fails). Confirmed: returns at once.
            member = self._presence.member(connection.id)
            try:
                try:
                    await self._listener.add(self._keys.channel(client_id))
                    for topic in topics:
                        await self._listener.add(self._keys.topic_channel(topic))
                    head, replay = await self._join(client_id, [member], last_event_id, topics)
                except ConnectionRefused as refused:
                    # Registered here before JOIN refused it cluster-wide: it leaves with
                    # the refusal as its reason, not as a client that closed its stream.
                    connection.close(refused.reason)
                    raise
                except BrokerUnavailable:
                    connection.close(BROKER_UNAVAILABLE)
                    raise
                cursor = newest_id(head, replay)
                self._fanout.joined(connection, cursor)
                # A Last-Event-ID newer than any id here (a clock step, Redis state lost) holds
                # nothing: the live frames below it are news to this tab.
                held = last_event_id if last_event_id and not is_future_id(last_event_id) else None
                opening = self._fanout.replay_then_early_frames(connection, replay, cursor, held)
                # Live frames that came during the JOIN may be newer than the cursor it read.
                yield Subscription(connection, opening, self._fanout.reached(connection))
            finally:
                self._fanout.closed(connection)
                await self._presence.leave(client_id, member)
                if topics:
                    await self._topics.leave(topics, member)

    def shared_acks(self) -> RedisAcks:
        """Acknowledgements through this broker's Redis and pub/sub listener."""
        if self._acks is None:
            self._acks = RedisAcks(self._redis, self._keys, self._timeout)
        return self._acks

    async def housekeeping(self) -> None:
        if handed := await self._presence.refresh(self.registry, self._member_if_open, ran_before=bool(self._seen_since)):
            queued = {self._keys.channel(client_id): _replay_of([], frames) for client_id, frames in handed.items()}
            self._fanout.caught_up(queued)
        listeners = [(topic, connection) for topic in list(self.registry.topics()) for connection in self.registry.topic_connections(topic)]
        with contextlib.suppress(BrokerUnavailable):
            await self._topics.refresh(listeners, self._member_if_open, self._presence.ttl_ms)

    def _member_if_open(self, connection: Connection) -> str | None:
        """The presence member of a connection that has joined and not begun to close:
        only such a connection's presence is refreshed (RedisFanout.has_opened)."""
        if not self._fanout.has_opened(connection):
            return None
        member = self._presence.member(connection.id)
        return None if self._presence.is_leaving(member) else member

    async def _join(
        self, client_id: str, members: list[str], after: str | None, topics: tuple[str, ...] = ()
    ) -> tuple[str, list[IdentifiedFrame]]:
        """Register and read what the connection is owed: the client's JOIN alone, or
        with one JOIN_TOPIC per topic in the same round trip."""
        client_call = self._join_call(client_id, members, after, self._per_client)
        if not topics:
            head, history, queued = self._admitted(await guarded(self._scripts.join(**client_call), self._timeout))
            return head.decode(), _replay_of(history, queued)
        pipeline = self._redis.pipeline(transaction=False)
        await self._scripts.join(client=pipeline, **client_call)
        history_from = self._history_from(after)
        for topic in topics:
            await self._topics.join(client=pipeline, **self._topics.join_call(topic, members, self._presence.ttl_ms, history_from))
        # A refused JOIN leaves its topic presences behind; subscribe's `finally` removes them.
        client_result, *topic_results = await guarded(pipeline.execute(), self._timeout)
        head, history, queued = self._admitted(client_result)
        heads = [head.decode(), *(topic_head.decode() for topic_head, _ in topic_results)]
        replay = _replay_of(history, queued, *(topic_history for _, topic_history in topic_results))
        return max(heads, key=parse_event_id), replay

    def _history_from(self, after: str | None) -> str:
        return _first_id_after(after) if after and self._history_size else ""

    def _admitted(self, join_result: list) -> list:
        if len(join_result) == 1:  # {'full'}: MAX_CONNECTIONS_PER_CLIENT live connections cluster-wide
            raise ConnectionRefused("client_connection_limit", f"clientId already has {self._per_client} open connections")
        return join_result

    def _join_call(self, client_id: str, members: list[str], after: str | None, per_client: int = 0) -> dict:
        """JOIN's keys and arguments; `per_client` > 0 refuses members past that many live
        connections of the client (0 for re-registering connections already open)."""
        keys = [
            self._keys.presence(client_id),
            self._keys.history(client_id),
            self._keys.queue(client_id),
            self._keys.online,
            self._keys.connections,
        ]
        args = [client_id, self._presence.ttl_ms, self._history_from(after), self._history_ttl_ms, per_client, *members]
        return {"keys": keys, "args": args}

    async def _stop_listening(self, client_id: str) -> None:
        channel = self._keys.channel(client_id)
        self._fanout.forget(channel)
        await self._listener.remove(channel, lambda: self.registry.connection_count(client_id) > 0)

    async def _stop_listening_topic(self, topic: str) -> None:
        channel = self._keys.topic_channel(topic)
        self._fanout.forget(channel)
        await self._listener.remove(channel, lambda: self.registry.topic_connection_count(topic) > 0)

    def _on_message(self, channel: str, frame: bytes) -> None:
        if channel == self._keys.broadcast_channel:
            self._fanout.deliver_all(frame)
        elif channel == self._keys.acks_channel:
            if self._acks is not None:
                self._acks.heard(frame)
        else:
            self._fanout.deliver(channel, frame)

    async def _catch_up(self) -> None:
        """After (re)connecting: re-register the presence of every local connection
        (client and topics) and read what each local client and topic missed, batched
        in pipelines; then offer each connection the missed frames of its client and
        topics, merged by id."""
        marked = self._scripts.mark_data_start(keys=[self._keys.ids, self._keys.connections], args=[self._seen_since, self._presence.ttl_ms])
        since = await guarded(marked, self._timeout)
        self._seen_since = since.decode()
        streams: list[tuple[str, object, dict]] = []  # (channel, script, call)
        for client_id in [c for c in list(self.registry.client_ids()) if self.registry.connection_count(c)]:
            members = [self._presence.member(c.id) for c in self.registry.connections_of(client_id)]
            channel = self._keys.channel(client_id)
            streams.append((channel, self._scripts.join, self._join_call(client_id, members, self._fanout.resume_point(channel))))
        for topic in [t for t in list(self.registry.topics()) if self.registry.topic_connection_count(t)]:
            members = [self._presence.member(c.id) for c in self.registry.topic_connections(topic)]
            channel = self._keys.topic_channel(topic)
            history_from = self._history_from(self._fanout.resume_point(channel))
            streams.append((channel, self._topics.join, self._topics.join_call(topic, members, self._presence.ttl_ms, history_from)))
        missed: dict[str, list[IdentifiedFrame]] = {}
        for start in range(0, len(streams), CATCH_UP_BATCH):
            batch = streams[start : start + CATCH_UP_BATCH]
            pipeline = self._redis.pipeline(transaction=False)
            for _, script, call in batch:
                await script(client=pipeline, **call)
            results = await guarded(pipeline.execute(), self._timeout * 5)
            for (channel, _, _), result in zip(batch, results):
                if frames := _replay_of(result[1], result[2] if len(result) > 2 else []):
                    missed[channel] = frames
        self._fanout.caught_up(missed)


def _replay_of(history: list[bytes], queued: list[bytes], *topic_histories: list[bytes]) -> list[IdentifiedFrame]:
    stored = [[(h[i].decode(), h[i + 1]) for i in range(0, len(h), 2)] for h in (history, *topic_histories)]
    waiting = [(event_id, frame) for frame in queued if (event_id := frame_event_id(frame))]
    return merge_replay(*stored, waiting)


def _first_id_after(event_id: str) -> str:
    """The inclusive XRANGE start just after `event_id`; "" when no stream id can
    follow it (a forged, absurdly large Last-Event-ID), which means: no history."""
    millis, sequence = parse_event_id(event_id)
    if millis > MAX_STREAM_ID_PART:
        return ""
    if sequence < MAX_STREAM_ID_PART:
        return f"{millis}-{sequence + 1}"
    return f"{millis + 1}-0" if millis < MAX_STREAM_ID_PART else ""
