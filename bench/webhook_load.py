"""Signed Stripe events for the ingest benchmarks, and the wrk script that posts them.

Both receivers (ours and dj-stripe) get byte-identical ``customer.updated`` events,
signed in advance like Stripe signs them (the signature stays valid for the 300 s
tolerance), one event id per request.  The customers exist in the project's Stripe
emulator, which dj-stripe re-fetches each object from.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from common.embedded import free_port, wait_for_port

SECRET = "whsec_bench_ingest"
API_KEY = "sk_test_benchIngest000000000000000"


@contextlib.contextmanager
def emulator() -> Iterator[str]:
    """The project's Stripe emulator in its own process; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "stripe_emulator", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "STRIPE_EMULATOR_WEBHOOK_URL": ""},
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def create_customers(base_url: str, count: int) -> list[dict[str, Any]]:
    """``count`` customers in the emulator (the objects the events carry)."""
    out = []
    with httpx.Client(base_url=base_url, auth=(API_KEY, "")) as client:
        for i in range(count):
            response = client.post(
                "/v1/customers", data={"name": f"Bench {i}", "email": f"bench{i}@example.test"}
            )
            response.raise_for_status()
            out.append(response.json())
    return out


def write_signed_events(customers: Sequence[dict[str, Any]], count: int, path: Path) -> int:
    """``count`` signed ``customer.updated`` events, one per line: ``signature<TAB>body``."""
    now = int(time.time())
    run = time.time_ns()
    with path.open("w") as f:
        for n in range(count):
            customer = dict(customers[n % len(customers)])
            customer["name"] = f"{customer['name']} #{n}"
            event = {
                "id": f"evt_bench{run}_{n}",
                "object": "event",
                "api_version": "2024-06-20",
                "created": now - count + n,
                "data": {"object": customer, "previous_attributes": {"name": customer["name"]}},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": "customer.updated",
            }
            body = json.dumps(event, separators=(",", ":"))
            signature = hmac.new(
                SECRET.encode(), f"{now}.{body}".encode(), hashlib.sha256
            ).hexdigest()
            f.write(f"t={now},v1={signature}\t{body}\n")
    return count


def wrk_script(path: Path, url_path: str) -> str:
    """Lua for wrk: post the file's events in order, each once (then wrap around)."""
    return (
        "local events = {}\n"
        f'for line in io.lines("{path}") do\n'
        '  local tab = line:find("\\t")\n'
        "  events[#events + 1] = {line:sub(1, tab - 1), line:sub(tab + 1)}\n"
        "end\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        "  local e = events[((n - 1) % #events) + 1]\n"
        f'  return wrk.format("POST", "{url_path}", {{["Stripe-Signature"] = e[1],'
        ' ["Content-Type"] = "application/json"}, e[2])\n'
        "end\n"
    )
