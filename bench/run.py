"""``make bench``: every scenario next to its peer or baseline, measured in the same run.

One command starts what it needs (the configured PostgreSQL/Redis in the benchmark's
own database and Redis db, else embedded ones; the Stripe emulator; the dj-stripe
peer in its own virtualenv), loads realistic data, drives each scenario from a
separate load-generator process (wrk when installed), and prints one table, also
written to ``bench/results.md`` with the machine and versions.

    uv run --group bench python -m bench [--quick] [--skip-scale] [--out bench/results.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import asyncpg

from bench import data, enforce, loadgen, setup, webhook_load
from bench.peers import business_time, djstripe_run
from bench.server import BASELINE_WRITE_DDL
from common.config import get_settings
from workers import queue

HERE = Path(__file__).resolve().parent
CONNECTIONS = 64
# The anchors' published enforcement granularity (how late a breach can be noticed).
ANCHORS = (("Zendesk automations (hourly)", 3600.0), ("Zammad SLA window (15 min)", 900.0))


@dataclass(frozen=True)
class Profile:
    """How much of everything one run does."""

    name: str
    customers: int
    incidents: int
    invoices: int
    seconds: float  # per load-generator run
    events: int  # signed events prepared per ingest run
    burst: int  # incidents due within the burst window
    burst_spread: float
    burst_lead: float
    burst_grace: float  # how long past the last deadline the run waits
    burst_one_worker: int
    api_scale: tuple[int, ...]
    peers_djstripe: bool


QUICK = Profile("quick", 2_000, 10_000, 5_000, 2, 12_000, 2_000, 10, 8, 20, 0, (), False)
FULL = Profile(
    "full", 10_000, 100_000, 50_000, 5, 30_000, 100_000, 60, 20, 40, 10_000, (2, 4), True
)


@dataclass
class Row:
    scenario: str
    throughput: str
    p50: str = "—"
    p99: str = "—"
    api_rss: str = "—"
    worker_rss: str = "—"
    peer: str = "—"
    ratio: str = "—"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.scenario}: {row.throughput}  p50 {row.p50}  p99 {row.p99}", flush=True)


def rate(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}"


def ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def mb(value: float) -> str:
    return f"{value:,.0f} MiB"


def times(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "—"


# ------------------------------------------------------------------ load


def drive(
    name: str, port: int, paths: Sequence[str], headers: dict[str, str], seconds: float
) -> loadgen.Result:
    return loadgen.best(name, "127.0.0.1", port, paths, headers, CONNECTIONS, seconds)


def post_incidents(
    name: str,
    port: int,
    path: str,
    key: str,
    customers: Sequence[str],
    seconds: float,
) -> loadgen.Result:
    """POST a new incident per request (unique ticket ids), as a helpdesk does."""
    token = f"{time.time_ns():x}"
    sample = random.Random(3).sample(list(customers), min(500, len(customers)))
    script = (
        f"local ids = {{{','.join(f'{c!r}' for c in sample)}}}\n".replace("'", '"')
        + 'local prios = {"p1", "p2", "p3", "p4"}\n'
        + "local n = 0\n"
        + f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        + 'wrk.headers["Content-Type"] = "application/json"\n'
        + "request = function()\n"
        + "  n = n + 1\n"
        + '  local body = \'{"customer_id":"\' .. ids[(n % #ids) + 1] .. '
        + f'\'","external_ref":"ZD-{token}-\' .. n .. '
        + '\'","priority":"\' .. prios[(n % 4) + 1] .. '
        + '\'","context":{"subject":"printer on fire","channel":"email"}}\'\n'
        + f'  return wrk.format("POST", "{path}", nil, body)\n'
        + "end\n"
    )
    result = loadgen.wrk_script(name, "127.0.0.1", port, script, CONNECTIONS, seconds)
    if result is not None:
        return result
    counter = iter(range(1 << 62))

    def body(_: str) -> bytes:
        n = next(counter)
        return json.dumps(
            {
                "customer_id": sample[n % len(sample)],
                "external_ref": f"ZD-{token}-{n}",
                "priority": ("p1", "p2", "p3", "p4")[n % 4],
                "context": {"subject": "printer on fire", "channel": "email"},
            }
        ).encode()

    return loadgen.load(
        name,
        "127.0.0.1",
        port,
        [path],
        {"Authorization": f"Bearer {key}"},
        CONNECTIONS,
        seconds,
        "POST",
        None,
        body,
    )


def post_events(name: str, port: int, path: str, events: Path, seconds: float) -> loadgen.Result:
    script = webhook_load.wrk_script(events, path)
    result = loadgen.wrk_script(name, "127.0.0.1", port, script, CONNECTIONS, seconds)
    if result is not None:
        return result
    lines = events.read_text().splitlines()
    counter = iter(range(1 << 62))

    def body(_: str) -> tuple[bytes, dict[str, str]]:
        signature, text = lines[next(counter) % len(lines)].split("\t", 1)
        return text.encode(), {"Stripe-Signature": signature}

    return loadgen.load(
        name, "127.0.0.1", port, [path], {}, CONNECTIONS, seconds, "POST", None, body
    )


# ------------------------------------------------------------------ database helpers


def sql(query: str, *args: object) -> object:
    async def go() -> object:
        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def execute(*statements: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())


def flush_redis() -> None:
    async def go() -> None:
        redis = await queue.connect(os.environ["REDIS_URL"])
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()

    asyncio.run(go())


def drain(workers: int) -> tuple[int, float, float]:
    """``workers`` burst-mode worker processes apply the queue: (jobs, seconds, peak RSS)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.drain"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "LOG_LEVEL": "WARNING"},
        )
        for _ in range(workers)
    ]
    started = time.perf_counter()
    outs = [json.loads(p.communicate(timeout=900)[0].strip().splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - started
    return sum(int(o["jobs"]) for o in outs), wall, max(o["peak_rss_mb"] for o in outs)


# ------------------------------------------------------------------ scenarios


def entitlements(report: Report, prof: Profile, key: str, ids: list[str], processes: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    sample = random.Random(1).sample(ids, min(2000, len(ids)))
    base_paths = [f"/v1/bench/baseline/{c}" for c in sample]
    ent_paths = [f"/v1/customers/{c}/entitlements" for c in sample]
    label = f"{processes} API process{'es' if processes > 1 else ''}"
    with setup.api(processes) as api:
        drive("warm-up", api.port, base_paths + ent_paths, headers, 2)
        health = (
            drive("health", api.port, ["/health"], {}, prof.seconds) if processes == 1 else None
        )
        base = drive("baseline", api.port, base_paths, headers, prof.seconds)
        ent = drive("entitlement", api.port, ent_paths, headers, prof.seconds)
        rss = api.peak_rss_mb()
    if health is not None:
        report.add(
            Row(
                "GET /health (framework ceiling), 1 API process",
                rate(health.rps, "req/s"),
                ms(health.pct(0.5)),
                ms(health.pct(0.99)),
                mb(rss),
            )
        )
    report.add(
        Row(
            f"one-SELECT asyncpg endpoint (baseline), {label}",
            rate(base.rps, "req/s"),
            ms(base.pct(0.5)),
            ms(base.pct(0.99)),
            mb(rss),
        )
    )
    peer = f"one-SELECT {rate(base.rps, 'req/s')}"
    ratio = times(ent.rps, base.rps)
    if health is not None:
        peer += f"; /health {rate(health.rps, 'req/s')}"
        ratio += f"; {times(ent.rps, health.rps)}"
    report.add(
        Row(
            f"entitlement read, {label}",
            rate(ent.rps, "req/s"),
            ms(ent.pct(0.5)),
            ms(ent.pct(0.99)),
            mb(rss),
            peer=peer,
            ratio=ratio,
        )
    )
    if ent.errors or base.errors:
        report.notes.append(f"entitlement read ({label}): {ent.errors + base.errors} errors")


def incidents(report: Report, prof: Profile, key: str, ids: list[str], processes: int) -> None:
    label = f"{processes} API process{'es' if processes > 1 else ''}"
    with setup.api(processes) as api:
        post_incidents("warm-up", api.port, "/v1/incidents", key, ids, 2)
        base = None
        if processes == 1:
            base = post_incidents(
                "baseline", api.port, "/v1/bench/baseline-write", key, ids, prof.seconds
            )
        opened = post_incidents("open", api.port, "/v1/incidents", key, ids, prof.seconds)
        rss = api.peak_rss_mb()
    flush_redis()  # the deadline checks they scheduled are not this scenario's business
    if base is not None:
        report.add(
            Row(
                "one-INSERT asyncpg endpoint (baseline), 1 API process",
                rate(base.rps, "req/s"),
                ms(base.pct(0.5)),
                ms(base.pct(0.99)),
                mb(rss),
            )
        )
    report.add(
        Row(
            f"incident open (POST /v1/incidents), {label}",
            rate(opened.rps, "/s"),
            ms(opened.pct(0.5)),
            ms(opened.pct(0.99)),
            mb(rss),
            peer="—" if base is None else f"one-INSERT {rate(base.rps, 'req/s')}",
            ratio="—" if base is None else times(opened.rps, base.rps),
        )
    )
    if opened.errors:
        report.notes.append(f"incident open ({label}): {opened.errors} non-2xx/errors")


@dataclass
class Ingest:
    accepted: float
    result: loadgen.Result
    rss: float


def ingest_ours(prof: Profile, customers: list[dict[str, object]], processes: int) -> Ingest:
    execute("TRUNCATE stripe_event")
    flush_redis()
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.tsv"
        webhook_load.write_signed_events(customers, prof.events, events)
        with setup.api(processes, {"STRIPE_WEBHOOK_SECRET": webhook_load.SECRET}) as api:
            result = post_events("ingest", api.port, "/v1/stripe/webhook", events, prof.seconds)
            rss = api.peak_rss_mb()
    stored = int(sql("SELECT count(*) FROM stripe_event"))  # type: ignore[call-overload]
    return Ingest(min(stored, result.requests) / result.seconds, result, rss)


def webhooks(
    report: Report,
    prof: Profile,
    customers: list[dict[str, object]],
    peer: tuple[Path, str, str, str] | None,
) -> None:
    ours = ingest_ours(prof, customers, 1)
    applied, seconds, worker_rss = drain(1)
    applied_rate = applied / seconds if seconds else 0.0
    dj: tuple[float, loadgen.Result, float, float] | None = None
    if peer is not None:
        python, db_url, stripe_base, path = peer
        with tempfile.TemporaryDirectory() as tmp:
            events = Path(tmp) / "events.tsv"
            webhook_load.write_signed_events(customers, 4000, events)
            before = djstripe_run.counts(python, db_url, stripe_base)
            with djstripe_run.serve(python, db_url, stripe_base) as api:
                result = post_events("dj-stripe", api.port, path, events, prof.seconds)
                rss = api.peak_rss_mb()
            after = djstripe_run.counts(python, db_url, stripe_base)
        stored = after[0] - before[0]
        processed = after[2] - before[2]
        dj = (stored / result.seconds, result, processed / result.seconds, rss)
        if result.errors:
            report.notes.append(f"dj-stripe: {result.errors} non-2xx/errors of {result.requests}")
    report.add(
        Row(
            "Stripe webhook ingest, accepted (signed customer.updated), 1 API process",
            rate(ours.accepted, "events/s"),
            ms(ours.result.pct(0.5)),
            ms(ours.result.pct(0.99)),
            mb(ours.rss),
            peer="—" if dj is None else f"dj-stripe {rate(dj[0], 'events/s')} (1 process)",
            ratio="—" if dj is None else times(ours.accepted, dj[0]),
        )
    )
    if dj is not None:
        report.add(
            Row(
                "dj-stripe webhook endpoint (peer), Django + gunicorn, 1 process",
                rate(dj[0], "events/s"),
                ms(dj[1].pct(0.5)),
                ms(dj[1].pct(0.99)),
                mb(dj[3]),
            )
        )
    report.add(
        Row(
            "Stripe webhook events applied, 1 worker",
            rate(applied_rate, "events/s"),
            worker_rss=mb(worker_rss),
            peer="—" if dj is None else f"dj-stripe {rate(dj[2], 'events/s')} (inline)",
            ratio="—" if dj is None else times(applied_rate, dj[2]),
        )
    )
    if ours.result.errors:
        report.notes.append(f"webhook ingest: {ours.result.errors} non-2xx/errors")


def webhook_scale(report: Report, prof: Profile, customers: list[dict[str, object]]) -> None:
    for processes in prof.api_scale:
        got = ingest_ours(prof, customers, processes)
        report.add(
            Row(
                f"Stripe webhook ingest, accepted, {processes} API processes",
                rate(got.accepted, "events/s"),
                ms(got.result.pct(0.5)),
                ms(got.result.pct(0.99)),
                mb(got.rss),
            )
        )
    ours = ingest_ours(prof, customers, 1)
    del ours
    applied, seconds, worker_rss = drain(2)
    report.add(
        Row(
            "Stripe webhook events applied, 2 workers",
            rate(applied / seconds if seconds else 0.0, "events/s"),
            worker_rss=f"{mb(worker_rss)} each",
        )
    )


def deadlines(report: Report, prof: Profile) -> None:
    n_ours = 100_000 if prof.name == "full" else 30_000
    n_peers = 2_000 if prof.name == "full" else 500
    for minutes in (480, 30 * 60):
        figures = business_time.compare(minutes, n_ours, n_peers)
        ours = figures[0]
        fastest = max((f for f in figures[1:]), key=lambda f: f.rate, default=None)
        hours = minutes // 60
        report.add(
            Row(
                f"business-time deadlines, {hours} h targets, Mon-Fri 09-17 Berlin + DE holidays",
                rate(ours.rate, "/s"),
                peer="—" if fastest is None else f"{fastest.name} {rate(fastest.rate, '/s')}",
                ratio="—" if fastest is None else times(ours.rate, fastest.rate),
            )
        )
        for f in figures[1:]:
            agreed = f"{f.agree:,} of {f.computed:,} identical"
            if f.equivalent is not None and f.equivalent != f.agree:
                agreed += f", {f.equivalent:,} equal in business time"
            report.add(
                Row(
                    f"  {f.name} (peer), {hours} h: {agreed}",
                    rate(f.rate, "/s"),
                )
            )


def burst(report: Report, prof: Profile, ids: list[str], workers: int, count: int) -> None:
    got = enforce.burst(ids, count, workers, prof.burst_lead, prof.burst_spread, prof.burst_grace)
    p99 = got.pct(0.99)
    bound = "" if got.breached == count else "≥ "
    twice = sum(got.twice.values())
    anchors = "; ".join(f"{name} {limit:,.0f} s" for name, limit in ANCHORS)
    ratios = (
        "; ".join(f"{bound and '≤ '}{limit / p99:,.0f}x finer" for _, limit in ANCHORS)
        if p99 > 0
        else "—"
    )
    report.add(
        Row(
            f"deadline enforcement: {count:,} incidents due within {prof.burst_spread:.0f} s, "
            f"{workers} worker{'s' if workers > 1 else ''} (lateness)",
            f"{got.breached:,}/{count:,} breached",
            f"{bound}{got.pct(0.5):.2f} s",
            f"{bound}{p99:.2f} s",
            worker_rss=f"{mb(got.peak_rss_mb)} each",
            peer=f"granularity: {anchors}",
            ratio=ratios,
        )
    )
    report.notes.append(
        f"enforcement burst ({workers} worker(s)): staged in {got.staged_s:.0f} s; lateness "
        f"max {got.lateness_s[-1] if got.lateness_s else float('nan'):.2f} s; "
        + ", ".join(f"{k}: {v}" for k, v in got.twice.items())
        + ("" if twice == 0 else "  <-- DOUBLE WORK")
    )


# ------------------------------------------------------------------ the machine


def machine() -> list[str]:
    cores = os.cpu_count()
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    pg = sql("SHOW server_version")
    redis_version = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", _REDIS_VERSION], capture_output=True, text=True, check=False
    ).stdout.strip()
    wrk_version = ""
    if loadgen.generator() == "wrk":
        shown = subprocess.run(
            ["wrk", "--version"],  # noqa: S607 - found on PATH by loadgen.generator()
            capture_output=True,
            text=True,
            check=False,
        )
        wrk_version = (shown.stdout or shown.stderr).split(" [")[0].strip()

    def v(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    return [
        f"- machine: {cores} cores ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB memory, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; PostgreSQL {pg}; Redis {redis_version}",
        f"- load generator: {wrk_version or loadgen.generator()}, "
        f"{CONNECTIONS} keep-alive connections, one thread, its own process",
        f"- litestar {v('litestar')}, uvicorn {v('uvicorn')}, msgspec {v('msgspec')}, "
        f"asyncpg {v('asyncpg')}, piccolo {v('piccolo')}, arq {v('arq')}, stripe {v('stripe')}",
        f"- peers: dj-stripe {djstripe_run.version('dj-stripe')} on Django "
        f"{djstripe_run.version('django')} (gunicorn gthread, {djstripe_run.THREADS} threads), "
        f"businesstimedelta {v('businesstimedelta')}, pandas {v('pandas')}",
    ]


_REDIS_VERSION = (
    "import asyncio, os\nfrom workers import queue\n"
    "async def main():\n    r = await queue.connect(os.environ['REDIS_URL'])\n"
    "    print((await r.info('server'))['redis_version'])\n    await r.aclose()\n"
    "asyncio.run(main())"
)


def table(rows: Sequence[Row]) -> str:
    header = (
        "scenario",
        "throughput",
        "p50",
        "p99",
        "API peak RSS",
        "worker peak RSS",
        "peer / baseline (same run)",
        "ratio",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        cells = (r.scenario, r.throughput, r.p50, r.p99, r.api_rss, r.worker_rss, r.peer, r.ratio)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ main


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    print(f"\n== {title}", flush=True)
    started = time.perf_counter()
    yield
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    parser.add_argument("--skip-scale", action="store_true", help="no 2/4-process runs")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    prof = QUICK if args.quick else FULL
    if args.skip_scale:
        prof = Profile(**{**prof.__dict__, "api_scale": (), "burst_one_worker": 0})
    started = time.perf_counter()
    report = Report()
    print(f"load generator: {loadgen.generator()}")
    with setup.services() as services, contextlib.ExitStack() as stack:
        os.environ["SLA_SWEEP_SECONDS"] = os.environ.get("SLA_SWEEP_SECONDS", "5")
        get_settings.cache_clear()
        flush_redis()
        with step("Stripe emulator, dj-stripe peer (migrating in the background), data"):
            stripe_base = stack.enter_context(webhook_load.emulator())
            os.environ.update(
                {
                    "STRIPE_API_KEY": webhook_load.API_KEY,
                    "STRIPE_API_BASE": stripe_base,
                    "STRIPE_WEBHOOK_SECRET": webhook_load.SECRET,
                }
            )
            preparing = None
            if prof.peers_djstripe:
                python = djstripe_run.install()
                peer_db = djstripe_run.database_url(
                    services.database_url, f"{setup.BENCH_DATABASE}_djstripe"
                )
                preparing = djstripe_run.prepare(python, peer_db, stripe_base, webhook_load.SECRET)
            loaded = asyncio.run(data.load(prof.customers, prof.incidents, prof.invoices))
            print("   " + ", ".join(f"{v:,} {k}" for k, v in loaded.counts.items()))
            execute(BASELINE_WRITE_DDL)
            stripe_customers = webhook_load.create_customers(stripe_base, 200)
            _link_stripe_customers(loaded.customers, stripe_customers)
            peer = None
            if preparing is not None:
                peer = (python, peer_db, stripe_base, djstripe_run.finish(preparing))
        with step("entitlement reads"):
            entitlements(report, prof, loaded.key, loaded.customers, 1)
        with step("incident open"):
            incidents(report, prof, loaded.key, loaded.customers, 1)
        with step("Stripe webhook ingest"):
            webhooks(report, prof, stripe_customers, peer)
        with step("business-time deadlines"):
            deadlines(report, prof)
        if prof.api_scale:
            with step("scale: 2 and 4 API processes, 2 workers"):
                for processes in prof.api_scale:
                    entitlements(report, prof, loaded.key, loaded.customers, processes)
                    incidents(report, prof, loaded.key, loaded.customers, processes)
                webhook_scale(report, prof, stripe_customers)
        # Last: a burst leaves a table full of fresh rows that autovacuum then works on.
        if prof.burst_one_worker:
            with step(f"deadline enforcement: {prof.burst_one_worker:,} due, 1 worker"):
                burst(report, prof, loaded.customers, 1, prof.burst_one_worker)
        with step(f"deadline enforcement: {prof.burst:,} due, 2 workers"):
            burst(report, prof, loaded.customers, 2, prof.burst)
        header = machine()
    took = time.perf_counter() - started
    text = "\n".join(
        [
            f"# `make bench` results ({prof.name} run, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{took / 60:.1f} min)",
            "",
            *header,
            f"- data: {', '.join(f'{v:,} {k}' for k, v in loaded.counts.items())}",
            "",
            table(report.rows),
            "",
            *(f"- {n}" for n in report.notes),
            "",
            "Ratios are ours ÷ the peer's (or the baseline's) from the same run; for lateness,",
            "the anchor's granularity ÷ our p99.  RSS is VmHWM summed over a server's processes.",
            "N API processes get DATABASE_POOL_SIZE=40/N each (PostgreSQL's connection limit is",
            "shared with everything else on the server); one process keeps the default 20.",
            "",
        ]
    )
    print("\n" + text)
    args.out.write_text(text)
    print(f"written to {args.out}")
    return 0


def _link_stripe_customers(ours: list[str], stripe_customers: list[dict[str, object]]) -> None:
    """Our first customers are the emulator's (the events name them by Stripe id)."""

    async def go() -> None:
        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            await conn.executemany(
                "UPDATE customer SET stripe_customer_id = $2 WHERE id = $1",
                [(ours[i], str(c["id"])) for i, c in enumerate(stripe_customers)],
            )
        finally:
            await conn.close()

    asyncio.run(go())


if __name__ == "__main__":
    raise SystemExit(main())
