"""A 300 MB body is refused by a real API process without the process growing (finding 1)."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from common import apikeys
from tests.hostile.conftest import LiveApi

TOTAL = 300 * 1024 * 1024
CHUNK = 1024 * 1024
MAX_GROWTH = 5 * 1024 * 1024


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _attack(url: str, key: str, chunked: bool, done: threading.Event) -> tuple[bytes, int]:
    """Stream up to 300 MB at the API until it answers; its answer and the bytes sent."""
    parts = urlsplit(url)
    framing = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {TOTAL}\r\n"
    head = (
        "POST /v1/customers HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Idempotency-Key: huge-{'chunked' if chunked else 'length'}\r\n"
        "Content-Type: application/json\r\n"
        f"{framing}\r\n"
    ).encode()
    payload = b"x" * CHUNK
    frame = b"%x\r\n" % CHUNK + payload + b"\r\n" if chunked else payload
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.5)
        try:
            while sent < TOTAL:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # it has answered: no point sending the rest
                try:
                    sock.sendall(frame)
                except TimeoutError:
                    continue  # it stopped reading; wait for its answer
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(30)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    done.set()
    return answer, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_300_mb_body_with_idempotency_key_is_refused_without_rss_growth(
    live_api: LiveApi, chunked: bool
) -> None:
    _, key = await apikeys.create_key("memory attack", "admin")
    async with httpx.AsyncClient(base_url=live_api.url, timeout=30) as http:
        for i in range(5):  # warm the paths a refused request takes, so they are not counted
            r = await http.post(
                "/v1/customers",
                content=b'{"name": ' + b'"x"' + b"}",
                headers={
                    "Authorization": f"Bearer {key}",
                    "Idempotency-Key": f"warm-{i}",
                    "Content-Type": "application/json",
                },
            )
            assert r.status_code == 400
    before = _rss(live_api.pid)
    done = threading.Event()
    attack = asyncio.create_task(asyncio.to_thread(_attack, live_api.url, key, chunked, done))
    peak = before
    while not done.is_set():
        peak = max(peak, _rss(live_api.pid))
        await asyncio.sleep(0.02)
    answer, sent = await attack
    peak = max(peak, _rss(live_api.pid))
    print(
        f"rss before {before / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB, sent {sent >> 20} MiB"
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"content-type: application/problem+json" in answer.lower()
    assert sent < TOTAL  # it answered long before the body ended
    assert peak - before < MAX_GROWTH
