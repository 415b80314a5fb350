"""Who is connected where, cluster-wide, kept in Redis with expiry.

Each open connection is a member `<instance>|<connection id>` of its client's
presence set, scored with an expiry time. An instance adds the member when the
stream opens, removes it when the stream ends, and every heartbeat pushes the
expiry of all its members to now + 2 × HEARTBEAT_SECONDS. Counting only
unexpired members means the clients of an instance that dies without a word
(SIGKILL, power loss, network cut) disappear within two heartbeats, and a
removal lost while Redis was unreachable heals the same way.
"""

from __future__ import annotations

import logging
from typing import Callable

from sse.batched_calls import BatchedCalls
from sse.broker import BrokerUnavailable, Totals
from sse.redis_calls import guarded
from sse.redis_scripts import BrokerScripts, RedisKeys
from sse.registry import Connection, ConnectionRegistry

MemberIfOpen = Callable[[Connection], "str | None"]  # a connection's member while it has joined and is not closing

logger = logging.getLogger("channel_push.redis")

REFRESH_BATCH = 500  # connections per refresh script, so one call never holds Redis long
LEAVE_BATCH = 500  # connections per leave script, for the same reason


class RedisPresence:
    def __init__(
        self,
        scripts: BrokerScripts,
        keys: RedisKeys,
        instance_id: str,
        ttl_ms: int,
        timeout_seconds: float,
    ) -> None:
        self._scripts = scripts
        self._keys = keys
        self._instance = instance_id
        self.ttl_ms = ttl_ms
        self._timeout = timeout_seconds
        self._leaving: set[str] = set()
        self._leaves = BatchedCalls(self._leave_many, item_size=2, batch_size=LEAVE_BATCH, what="presence removal")
        self._refresh_failing = False

    def member(self, connection_id: str) -> str:
        return f"{self._instance}|{connection_id}"

    def is_leaving(self, member: str) -> bool:
        return member in self._leaving

    async def leave(self, client_id: str, member: str) -> None:
        """Remove one connection; never raises (an unremoved member expires by itself).
        Connections that end together leave together (sse/batched_calls.py)."""
        self._leaving.add(member)
        try:
            await self._leaves.add(client_id, member)
        finally:
            self._leaving.discard(member)

    async def close(self) -> None:
        """Before Redis closes: the removal on its way finishes, no other is sent."""
        await self._leaves.close()

    async def _leave_many(self, pairs: list[str]) -> None:
        keys = [self._keys.online, self._keys.connections]
        await guarded(self._scripts.leave(keys=keys, args=[self._keys.prefix, *pairs]), self._timeout)

    async def refresh(self, registry: ConnectionRegistry, member_if_open: MemberIfOpen, ran_before: bool) -> dict[str, list[bytes]]:
        """Extend the expiry of every connection here that `member_if_open` names; never
        raises. Returns the queued frames of clients whose presence here had lapsed, by
        client (REFRESH). `ran_before`: this instance saw Redis's data before."""
        handed: dict[str, list[bytes]] = {}
        connections = [connection for client_id in list(registry.client_ids()) for connection in registry.connections_of(client_id)]
        keys = [self._keys.online, self._keys.connections, self._keys.ids]
        try:
            for start in range(0, max(len(connections), 1), REFRESH_BATCH):
                # Checked as each batch goes, not once for all: a connection that closed
                # (and left) while an earlier batch waited on Redis would come back.
                batch = [item for connection in connections[start : start + REFRESH_BATCH] for item in _pair(connection, member_if_open)]
                args = [self._keys.prefix, self.ttl_ms, "1" if ran_before else "", *batch]
                claimed = await guarded(self._scripts.refresh(keys=keys, args=args), self._timeout)
                for index in range(0, len(claimed), 2):
                    handed.setdefault(claimed[index].decode(), []).append(claimed[index + 1])
        except BrokerUnavailable as unavailable:
            if not self._refresh_failing:
                logger.warning("presence refresh failed: %s", unavailable)
            self._refresh_failing = True
            return handed
        self._refresh_failing = False
        return handed

    async def count(self, client_id: str) -> int:
        return int(await guarded(self._scripts.count(keys=[self._keys.presence(client_id)]), self._timeout))

    async def totals(self) -> Totals:
        keys = [self._keys.online, self._keys.connections]
        clients, connections = await guarded(self._scripts.totals(keys=keys), self._timeout)
        return Totals(int(clients), int(connections))


def _pair(connection: Connection, member_if_open: MemberIfOpen) -> tuple[str, ...]:
    member = member_if_open(connection)
    return () if member is None else (connection.client_id, member)

