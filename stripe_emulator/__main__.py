"""`python -m stripe_emulator`: serve the emulator with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from stripe_emulator.app import create_app
from stripe_emulator.emulator import DEFAULT_WEBHOOK_SECRET

log = logging.getLogger("stripe_emulator")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stripe_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("STRIPE_EMULATOR_PORT", 12111))
    )
    parser.add_argument(
        "--webhook-url",
        default=os.environ.get("STRIPE_EMULATOR_WEBHOOK_URL") or None,
        help="POST every event here, signed like Stripe",
    )
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET") or DEFAULT_WEBHOOK_SECRET,
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("STRIPE_EMULATOR_DATA_DIR") or None,
        help="keep the state in a SQLite file here (default: in memory, gone at exit)",
    )
    parser.add_argument(
        "--reset", action="store_true", help="forget the state kept in --data-dir, then start"
    )
    parser.add_argument(
        "--webhook-time-scale",
        type=float,
        default=float(os.environ.get("STRIPE_EMULATOR_WEBHOOK_TIME_SCALE") or 1.0),
        help="multiply webhook retry delays (Stripe's 3-day schedule) by this",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_app(
        args.webhook_url,
        args.webhook_secret,
        data_dir=args.data_dir,
        reset=args.reset,
        webhook_time_scale=args.webhook_time_scale,
    )
    log.info(
        "Stripe emulator listening on http://%s:%d (webhooks: %s; state: %s)",
        args.host,
        args.port,
        args.webhook_url or "none configured",
        args.data_dir or "in memory",
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
