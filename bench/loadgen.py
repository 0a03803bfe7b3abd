"""A small closed-loop HTTP/1.1 load generator (keep-alive connections, latency percentiles).

Runs in its own process so that it does not share the server's event loop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self) -> str:
        return (
            f"{self.name:<22} {self.rps:9.0f} req/s   p50 {self.pct(0.50):6.2f} ms   "
            f"p99 {self.pct(0.99):6.2f} ms   errors {self.errors}"
        )


async def _skip_chunks(reader: asyncio.StreamReader) -> None:
    """Read a chunked body to its end (size lines, chunks, the last chunk and trailers)."""
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass  # trailers
            return
        await reader.readexactly(size + 2)  # the chunk and its CRLF


async def _connection(
    host: str,
    port: int,
    paths: Sequence[str],
    headers: str,
    until: float,
    latencies: list[float],
    errors: list[int],
    method: str,
    body: bytes | None,
    body_for: object,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            path = random.choice(paths)
            produced = body_for(path) if callable(body_for) else body
            more: dict[str, str] = {}
            if isinstance(produced, tuple):  # (body, per-request headers)
                produced, more = produced
            payload = produced
            extra = "".join(f"{k}: {v}\r\n" for k, v in more.items())
            if payload is not None:
                extra += f"Content-Length: {len(payload)}\r\nContent-Type: application/json\r\n"
            request = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}{extra}\r\n").encode()
            started = time.perf_counter()
            writer.write(request + (payload or b""))
            status_line = await reader.readline()
            length = 0
            chunked = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                elif name.strip().lower() == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
            if chunked:
                await _skip_chunks(reader)
            else:
                await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if not status_line.startswith(b"HTTP/1.1 2"):
                errors.append(1)
    finally:
        writer.close()


async def _run(
    host: str,
    port: int,
    paths: Sequence[str],
    headers: dict[str, str],
    connections: int,
    seconds: float,
    method: str,
    body: bytes | None,
    body_for: object,
) -> tuple[int, int, float, list[float]]:
    header_text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(
            _connection(
                host, port, paths, header_text, until, latencies, errors, method, body, body_for
            )
            for _ in range(connections)
        )
    )
    return len(latencies), len(errors), time.perf_counter() - started, latencies


def _child(queue: multiprocessing.Queue, args: tuple[object, ...]) -> None:  # type: ignore[type-arg]
    queue.put(asyncio.run(_run(*args)))  # type: ignore[arg-type]


def load(
    name: str,
    host: str,
    port: int,
    paths: Sequence[str],
    headers: dict[str, str],
    connections: int = 64,
    seconds: float = 10.0,
    method: str = "GET",
    body: bytes | None = None,
    body_for: object = None,
) -> Result:
    """Drive ``paths`` with ``connections`` concurrent keep-alive clients for ``seconds``."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_child,
        args=(
            queue,
            (host, port, list(paths), headers, connections, seconds, method, body, body_for),
        ),
    )
    proc.start()
    requests, errors, elapsed, latencies = queue.get()
    proc.join()
    return Result(name, requests, errors, elapsed, tuple(latencies))


def summary(results: Sequence[Result]) -> str:
    return "\n".join(r.line() for r in results)


def median_rps(results: Sequence[Result]) -> float:
    return statistics.median(r.rps for r in results)


def _ms(text: str) -> float:
    value = float(text.rstrip("usm"))
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    return value * 1000  # seconds


_WRK_DONE = (
    "done = function(summary, latency, requests)\n"
    "  io.write(string.format('P50 %d\\nP99 %d\\nERR %d\\nNON2XX %d\\nREQ %d\\n',"
    " latency:percentile(50), latency:percentile(99),"
    " summary.errors.connect + summary.errors.read + summary.errors.write"
    " + summary.errors.timeout, summary.errors.status, summary.requests))\nend\n"
)


def wrk(
    name: str,
    host: str,
    port: int,
    paths: Sequence[str],
    headers: dict[str, str],
    connections: int = 64,
    seconds: float = 10.0,
    threads: int = 1,
) -> Result | None:
    """The same measurement with wrk (C, far cheaper than a Python client); None if absent."""
    lua_paths = ",".join(f'"{p}"' for p in paths)
    lua_headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script = (
        f"local paths = {{{lua_paths}}}\n{lua_headers}"
        "math.randomseed(os.time())\n"
        "request = function() return wrk.format(nil, paths[math.random(#paths)]) end\n"
    )
    return wrk_script(name, host, port, script, connections, seconds, threads)


def wrk_script(
    name: str,
    host: str,
    port: int,
    script: str,
    connections: int = 64,
    seconds: float = 10.0,
    threads: int = 1,
) -> Result | None:
    """Run wrk with a Lua ``script`` (its ``request``; this adds ``done``); None if absent."""
    import os
    import re
    import shutil
    import subprocess
    import tempfile

    binary = shutil.which("wrk")
    if binary is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + _WRK_DONE)
    try:
        out = subprocess.run(  # noqa: S603 - fixed binary and arguments
            [
                binary,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                f.name,
                f"http://{host}:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(f.name)

    def field(label: str) -> int:
        found = re.search(rf"{label} (\d+)", out)
        assert found is not None, out
        return int(found.group(1))

    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found is not None, out
    rps = float(found.group(1))
    total = field("REQ")
    # wrk reports percentiles, not samples: keep them as a two-point distribution.
    return _WrkResult(
        name,
        total,
        field("ERR") + field("NON2XX"),
        total / rps if rps else seconds,
        (),
        field("P50") / 1000,
        field("P99") / 1000,
    )


@dataclass(frozen=True)
class _WrkResult(Result):
    p50: float = 0.0
    p99: float = 0.0

    def pct(self, q: float) -> float:
        return self.p50 if q <= 0.5 else self.p99


def generator() -> str:
    """Which load generator ``best`` uses on this machine."""
    import shutil

    return "wrk" if shutil.which("wrk") else "the Python generator (install wrk for less noise)"


def best(
    name: str,
    host: str,
    port: int,
    paths: Sequence[str],
    headers: dict[str, str],
    connections: int = 64,
    seconds: float = 10.0,
) -> Result:
    """wrk when installed, else the Python generator."""
    return wrk(name, host, port, paths, headers, connections, seconds) or load(
        name, host, port, paths, headers, connections, seconds
    )
