"""The API with a baseline route, served by uvicorn for the benchmarks."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
import uvicorn
from litestar import get
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


def app() -> Any:
    return create_app(extra_routes=[baseline])


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
