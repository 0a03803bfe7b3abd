"""The API with a baseline route, served by uvicorn for the benchmarks."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
import uvicorn
from litestar import get, post
from litestar.params import FromPath

from api.app import create_app
from api.auth import HELPDESK
from common import db


class BaselineRow(msgspec.Struct, frozen=True):
    id: str
    external_id: str
    name: str


@get(
    "/v1/bench/baseline/{customer_id:str}",
    operation_id="benchBaseline",
    opt=HELPDESK,
    include_in_schema=False,
)
async def baseline(customer_id: FromPath[str]) -> BaselineRow:
    """One primary-key SELECT through asyncpg returning a msgspec Struct (the yardstick)."""
    pool = db.engine().pool
    assert pool is not None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, external_id, name FROM customer WHERE id = $1", customer_id
        )
    assert row is not None
    return BaselineRow(row["id"], row["external_id"], row["name"])


class BaselineWrite(msgspec.Struct, kw_only=True):
    customer_id: str
    external_ref: str
    priority: str
    context: dict[str, Any] = {}


class BaselineWritten(msgspec.Struct, frozen=True):
    id: str
    customer_id: str


_WRITE_IDS = iter(range(1, 1 << 62))


@post(
    "/v1/bench/baseline-write",
    operation_id="benchBaselineWrite",
    opt=HELPDESK,
    include_in_schema=False,
)
async def baseline_write(data: BaselineWrite) -> BaselineWritten:
    """One INSERT through asyncpg of the decoded body (the yardstick of a database write)."""
    pool = db.engine().pool
    assert pool is not None
    row_id = f"bw_{next(_WRITE_IDS)}_{id(_WRITE_IDS)}"
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO bench_write (id, customer_id, external_ref, priority, context)"
            " VALUES ($1, $2, $3, $4, $5)",
            row_id,
            data.customer_id,
            data.external_ref,
            data.priority,
            msgspec.json.encode(data.context).decode(),
        )
    return BaselineWritten(row_id, data.customer_id)


BASELINE_WRITE_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_write (id text PRIMARY KEY, customer_id text NOT NULL,"
    " external_ref text NOT NULL, priority text NOT NULL, context jsonb NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now())"
)


def app() -> Any:
    return create_app(extra_routes=[baseline, baseline_write])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "bench.server:app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        workers=args.processes,
    )
