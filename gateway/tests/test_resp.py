"""The limiter's Redis client against the real Redis: replies, pipelining, script
loading, and failing fast when Redis is gone or silent."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import pytest

from gateway.limits.resp import PipelinedRedis, RedisReplyError, RedisUnavailable, encode, parse

REDIS_URL = os.environ.get("BOURSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_parse_handles_each_reply_type_and_partial_input() -> None:
    buffer = bytearray(b"*3\r\n:1\r\n$3\r\nabc\r\n+OK\r\n-ERR bad\r\n")
    value, position = parse(buffer, 0)  # type: ignore[misc]
    assert value == [1, b"abc", "OK"]
    error, _ = parse(buffer, position)  # type: ignore[misc]
    assert isinstance(error, RedisReplyError) and str(error) == "ERR bad"
    assert parse(bytearray(b"*2\r\n:1\r\n"), 0) is None  # incomplete
    assert parse(bytearray(b"$5\r\nab"), 0) is None
    assert encode("GET", "k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


async def test_concurrent_scripts_are_pipelined_and_loaded_on_demand() -> None:
    client = PipelinedRedis(REDIS_URL)
    # A script Redis has never seen: the first calls go through NOSCRIPT -> EVAL.
    script = f"-- {uuid.uuid4().hex}\nreturn {{tonumber(ARGV[1]) * 2, KEYS[1]}}"
    try:
        replies = await asyncio.gather(
            *(client.evalsha(script, [f"k{i}"], [i]) for i in range(200))
        )
        assert replies == [[i * 2, f"k{i}".encode()] for i in range(200)]
        with pytest.raises(RedisReplyError):
            await client.execute("NOSUCHCOMMAND")
        assert await client.execute("PING") == "PONG"  # the connection survived the error
    finally:
        await client.close()


async def test_unreachable_or_silent_redis_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = PipelinedRedis(f"redis://127.0.0.1:{closed_port}/0", timeout=0.5)
    with pytest.raises(RedisUnavailable):
        await refused.execute("PING")
    await refused.close()

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # reads until the client hangs up; never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable):
            await client.execute("PING")
        assert time.monotonic() - started < 1.5
    finally:
        await client.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
