"""Profile one scenario under load with py-spy and print its top frames.

    uv run --group bench python -m bench.profile entitlement|open|ingest|apply|burst

Starts the same services and data as ``make bench --quick``, puts the scenario's
load on the API process (or a worker), samples it with ``py-spy record`` for the
duration and prints the frames that hold the most samples: by self time, and the
project's own functions by inclusive time.  (py-spy samples from outside the
process, so the figures while profiling are a little lower than the table's.)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import data, enforce, run, setup, webhook_load
from bench.server import BASELINE_WRITE_DDL
from common.config import PROJECT_ROOT, get_settings


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed (uv sync --group bench)")
    return found


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - py-spy with fixed arguments
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def top(raw: Path, n: int = 15) -> str:
    """Self time per function, and inclusive time of the project's own functions."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(f) for f in stack.split(";")]
        self_time[frames[-1]] += count
        for frame in set(frames):
            if _ours(frame):
                inclusive[frame] += count
    lines = [f"{total} samples", "", "self time (the Python line a C call was made from counts):"]
    lines += [f"  {100 * c / total:5.1f} %  {f}" for f, c in self_time.most_common(n)]
    lines += ["", "inclusive, the project's own functions:"]
    lines += [f"  {100 * c / total:5.1f} %  {f}" for f, c in inclusive.most_common(n)]
    return "\n".join(lines)


def _function(frame: str) -> str:
    """``name (path:line)`` -> ``name (short path)``: one entry per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for prefix in (str(PROJECT_ROOT) + "/", "site-packages/"):
        if prefix in path:
            path = path.split(prefix, 1)[1]
    return f"{name} ({path})" if path else name


def _ours(frame: str) -> bool:
    return any(f"({pkg}/" in frame for pkg in ("api", "billing", "sla", "workers", "common"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=("entitlement", "open", "ingest", "apply", "burst"))
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    prof = run.QUICK
    with setup.services(), tempfile.TemporaryDirectory() as tmp, webhook_load.emulator() as base:
        os.environ.update(
            {
                "STRIPE_API_KEY": webhook_load.API_KEY,
                "STRIPE_API_BASE": base,
                "STRIPE_WEBHOOK_SECRET": webhook_load.SECRET,
            }
        )
        get_settings.cache_clear()
        run.flush_redis()
        loaded = asyncio.run(data.load(prof.customers, prof.incidents, prof.invoices))
        run.execute(BASELINE_WRITE_DDL)
        raw = Path(tmp) / "profile.txt"
        headers = {"Authorization": f"Bearer {loaded.key}"}
        if args.scenario in ("entitlement", "open", "ingest"):
            events = Path(tmp) / "events.tsv"
            if args.scenario == "ingest":
                customers = webhook_load.create_customers(base, 200)
                webhook_load.write_signed_events(customers, 60_000, events)
            with setup.api(1) as api:
                paths = [f"/v1/customers/{c}/entitlements" for c in loaded.customers[:2000]]
                run.drive("warm-up", api.port, paths, headers, 2)
                spy = record(api.proc.pid, args.seconds, raw)
                time.sleep(0.5)
                if args.scenario == "entitlement":
                    got = run.drive("load", api.port, paths, headers, args.seconds)
                elif args.scenario == "open":
                    got = run.post_incidents(
                        "load",
                        api.port,
                        "/v1/incidents",
                        loaded.key,
                        loaded.customers,
                        args.seconds,
                    )
                else:
                    got = run.post_events(
                        "load", api.port, "/v1/stripe/webhook", events, args.seconds
                    )
                spy.wait()
            print(f"under py-spy: {got.rps:,.0f} req/s, p99 {got.pct(0.99):.1f} ms\n")
        elif args.scenario == "apply":
            customers = webhook_load.create_customers(base, 200)
            events = Path(tmp) / "events.tsv"
            webhook_load.write_signed_events(customers, 20_000, events)
            with setup.api(1) as api:
                run.post_events("ingest", api.port, "/v1/stripe/webhook", events, 8)
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.drain"], env={**os.environ, "LOG_LEVEL": "WARNING"}
            )
            time.sleep(2)  # past start-up
            record(proc.pid, args.seconds, raw).wait()
            proc.wait()
        else:
            with enforce.workers(2) as procs:
                first_due = datetime.now(UTC) + timedelta(seconds=15)
                tag = f"PROFILE-{time.time_ns()}"
                asyncio.run(enforce._stage(loaded.customers, 20_000, first_due, 30, tag))
                time.sleep(max(0.0, (first_due - datetime.now(UTC)).total_seconds()))
                record(procs[0].pid, args.seconds, raw).wait()
        print(top(raw))


if __name__ == "__main__":
    main()
