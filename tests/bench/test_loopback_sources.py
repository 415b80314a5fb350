"""The load process spreads its streams over loopback source addresses (bench/sse_clients.py)."""

from __future__ import annotations

import asyncio

import pytest

from bench.sse_clients import ArrivalLog, ClientFleet, source_address


def test_consecutive_clients_take_turns_over_the_sources():
    addresses = [source_address("127.0.0.1", index, sources=4) for index in range(8)]
    assert [host for host, _ in addresses] == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"] * 2
    assert {port for _, port in addresses} == {0}  # the kernel picks the port, per source address


def test_off_loopback_or_with_one_source_the_kernel_chooses():
    assert source_address("10.0.0.5", 3) is None
    assert source_address("127.0.0.1", 3, sources=1) is None


@pytest.mark.anyio
async def test_a_fleet_connects_from_every_source_address():
    peers: list[str] = []
    writers: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fleet = ClientFleet("127.0.0.1", port, ArrivalLog(), sources=4)
    try:
        await fleet.connect([(f"c{index}", "token") for index in range(8)], concurrency=8, timeout=5.0)
        assert fleet.failures == 0 and len(fleet.open_clients) == 8
        assert sorted(peers) == sorted(["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"] * 2)
        assert len(fleet.connect_seconds) == 8
    finally:
        fleet.close_all()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
