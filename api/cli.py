"""The ``support-billing`` command: run, api, worker, migrate, seed, keys, stripe."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import click

from common.config import ConfigError, Settings, configure_logging, get_settings, load_settings
from common.embedded import Services, ensure_services

T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as e:
        raise click.ClickException(f"configuration error: {e}") from e
    configure_logging(settings)
    return settings


@contextlib.contextmanager
def _services(settings: Settings, *, redis: bool = True) -> Iterator[Services]:
    """Configured or embedded services, exported to the environment for this process."""
    services = ensure_services(
        settings.database_url, settings.redis_url, settings.data_dir, with_redis=redis
    )
    services.export()
    try:
        yield services
    finally:
        services.stop()


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def with_pool() -> T:
        from common import db

        await db.open_pool(
            max_size=get_settings().database_pool_size, application_name="support-billing-cli"
        )
        try:
            return await make()
        finally:
            await db.close_pool()

    return asyncio.run(with_pool())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Support Billing: tiered premium support on Stripe, with SLA enforcement."""


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    settings = _settings()
    with _services(settings, redis=False):
        from common import db

        _run(db.run_migrations)
        click.echo("migrations applied")


@main.command()
def seed() -> None:
    """Seed the default plan catalog when the catalog is empty."""
    settings = _settings()
    with _services(settings, redis=False):
        _run(lambda: _seed_catalog(settings))


async def _seed_catalog(settings: Settings) -> None:
    """Seed the catalog when empty, then make sure Stripe has its products and prices."""
    from billing import service as billing

    billing.configure_stripe(settings)
    try:
        created = await billing.seed_catalog()
        click.echo(f"catalog: {'seeded ' + ', '.join(created) if created else 'already present'}")
        synced = await billing.sync_catalog_to_stripe()
        click.echo(f"stripe: {len(synced)} plan version(s) synced")
    finally:
        await billing.close_stripe()


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(["admin", "helpdesk", "finance"]))
@click.option("--name", required=True, help="Who or what uses the key.")
def keys_create(role: str, name: str) -> None:
    """Create a key; the key itself is printed once, as the last line."""
    settings = _settings()
    with _services(settings, redis=False):
        from common import apikeys
        from common.audit import acting_as

        async def create() -> tuple[Any, str]:
            with acting_as("cli"):
                return await apikeys.create_key(name, role)

        info, secret = _run(create)
        click.echo(f"created {info.role} key {info.id} ({info.name}), prefix {info.prefix}")
        click.echo("store it now: it is shown only once")
        click.echo(secret)


@main.group("stripe")
def stripe_group() -> None:
    """Stripe catalog sync, event replay and mirror reconcile."""


def _with_stripe(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on the database pool with the Stripe gateway configured, then closed."""
    from billing import service as billing

    async def run() -> T:
        billing.configure_stripe(settings)
        try:
            return await work()
        finally:
            await billing.close_stripe()

    return _run(run)


async def _each(
    ids: list[str], apply: Callable[[str], Awaitable[str]], actor: str
) -> list[tuple[str, str]]:
    """Apply to each id in turn; a failure is reported and the rest go on."""
    from common.audit import acting_as

    results: list[tuple[str, str]] = []
    with acting_as(actor):
        for item in ids:
            try:
                results.append((item, await apply(item)))
            except Exception as e:  # report each failure and go on with the rest
                results.append((item, f"failed: {e!r}"))
    return results


def _report(results: list[tuple[str, str]], none: str) -> None:
    for item, outcome in results:
        click.echo(f"{item}: {outcome}")
    if not results:
        click.echo(none)
    if any(outcome.startswith("failed") for _, outcome in results):
        raise SystemExit(1)


@stripe_group.command("sync-catalog")
def stripe_sync_catalog() -> None:
    """Create the Products and Prices (lookup keys <plan>_v<version>_<interval>) in Stripe."""
    settings = _settings()
    with _services(settings, redis=False):
        from billing import service as billing

        for line in _with_stripe(settings, billing.sync_catalog_to_stripe):
            click.echo(f"synced {line}")


@stripe_group.command("dead")
@click.option("--limit", default=100, show_default=True, help="How many, newest first.")
def stripe_dead(limit: int) -> None:
    """List Stripe events stored dead (they cannot be applied as sent), with their error."""
    settings = _settings()
    with _services(settings, redis=False):
        from billing import service as billing

        rows = _run(lambda: billing.dead_stripe_events(limit))
        for row in rows:
            click.echo(
                f"{row['id']}  {row['type'] or '-'}  dead {row['dead_at']:%Y-%m-%d %H:%M}  "
                f"attempts {row['attempts']}  {row['last_error']}"
            )
        if not rows:
            click.echo("no dead events")


@stripe_group.command("replay")
@click.option(
    "--failed", is_flag=True, help="Re-run every event whose last attempt failed, dead ones too."
)
@click.argument("event_ids", nargs=-1)
def stripe_replay(failed: bool, event_ids: tuple[str, ...]) -> None:
    """Apply stored Stripe events again (chosen ids, or --failed); safe to repeat."""
    if not failed and not event_ids:
        raise click.UsageError("name event ids or pass --failed")
    settings = _settings()
    with _services(settings, redis=False):
        from billing import service as billing

        async def replay() -> list[tuple[str, str]]:
            marked = await billing.mark_stripe_events_for_replay(list(event_ids), failed)
            return await _each(marked, billing.process_stripe_event, "cli:replay")

        _report(_with_stripe(settings, replay), "no matching events")


@stripe_group.command("reconcile")
@click.option(
    "--since",
    type=click.IntRange(min=1),
    default=None,
    help="Only objects Stripe created in the last DAYS days (default: all).",
    metavar="DAYS",
)
def stripe_reconcile(since: int | None) -> None:
    """Page through Stripe's invoices, credit notes, payments and refunds and repair the
    mirror (a missing row is restored, a differing one repaired); prints what it fixed."""
    from datetime import timedelta

    from common.clock import utcnow

    settings = _settings()
    with _services(settings, redis=False):
        from billing import service as billing

        start = None if since is None else utcnow() - timedelta(days=since)
        report = _with_stripe(settings, lambda: billing.reconcile_with_stripe(start))
        for name in ("invoices", "credit_notes", "payments", "refunds"):
            counts = getattr(report, name)
            click.echo(
                f"{name}: checked {counts.checked}, restored {counts.restored},"
                f" repaired {counts.repaired}"
            )
            for stripe_id in counts.restored_ids:
                click.echo(f"  restored {stripe_id}")
            for stripe_id in counts.repaired_ids:
                click.echo(f"  repaired {stripe_id}")
        click.echo(f"fixed {report.total_fixed} object(s)")


@main.group("credits")
def credits_group() -> None:
    """Service credits for breached incidents."""


@credits_group.command("retry")
@click.option("--failed", is_flag=True, help="Re-issue every failed service credit.")
@click.argument("credit_ids", nargs=-1)
def credits_retry(failed: bool, credit_ids: tuple[str, ...]) -> None:
    """Re-issue failed service credits now (after fixing what Stripe refused); safe to repeat."""
    if not failed and not credit_ids:
        raise click.UsageError("name service credit ids (scr_…) or pass --failed")
    settings = _settings()
    with _services(settings, redis=False):
        from billing import service as billing
        from sla import service as sla

        async def retry() -> list[tuple[str, str]]:
            ids = list(credit_ids) or await billing.failed_credit_ids()
            return await _each(ids, sla.retry_credit_now, "cli:credits")

        _report(_with_stripe(settings, retry), "no failed service credits")


@keys.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    settings = _settings()
    with _services(settings, redis=False):
        from common import apikeys

        for info in _run(apikeys.list_keys):
            state = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
            click.echo(f"{info.id}  {info.prefix}  {info.role:<8}  {state:<18}  {info.name}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id or prefix."""
    settings = _settings()
    with _services(settings, redis=False):
        from common import apikeys
        from common.audit import acting_as

        async def revoke() -> Any:
            with acting_as("cli"):
                return await apikeys.revoke_key(key_id)

        try:
            info = _run(revoke)
        except apikeys.ApiKeyNotFound as e:
            raise click.ClickException(str(e)) from e
        click.echo(f"revoked {info.id} ({info.name})")


@main.command()
@click.option("--host", default=None, help="Bind address (default HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default PORT or 8000).")
@click.option("--workers", "processes", default=1, show_default=True, help="uvicorn processes.")
def api(host: str | None, port: int | None, processes: int) -> None:
    """Serve the API (services must be configured or already running)."""
    import uvicorn

    settings = _settings()
    with _services(settings):
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=processes,
            log_config=None,
            access_log=False,
            proxy_headers=True,
        )


@main.command()
@click.option(
    "--check",
    is_flag=True,
    help="Exit 0 when this host's worker processes are healthy, 1 when not (a liveness probe).",
)
@click.option("--pid", type=int, default=None, help="With --check: only this worker process.")
def worker(check: bool, pid: int | None) -> None:
    """Run a worker process: the deadline queue and the bulk queue (Ctrl-C stops it)."""
    settings = _settings()
    from workers import process

    if check:
        healthy, lines = process.check(settings, pid)
        for line in lines:
            click.echo(line)
        raise SystemExit(0 if healthy else 1)
    with _services(settings):
        asyncio.run(process.serve(load_settings()))


@main.command()
@click.option("--api-url", default=None, help="The API (default: http://HOST:PORT).")
@click.option("--stripe-url", default=None, help="The emulator (default: STRIPE_EMULATOR_PORT).")
@click.option("--admin-key", default=None, help="An admin key (default: make run's dev key).")
def demo(api_url: str | None, stripe_url: str | None, admin_key: str | None) -> None:
    """The README's tour against a running `make run`, told step by step."""
    from api import demo as tour

    raise SystemExit(tour.main(_settings(), api_url, stripe_url, admin_key))


@main.command()
@click.option("--yes", is_flag=True, help="Do it without asking.")
def reset(yes: bool) -> None:
    """Start from scratch (development): forget every customer, plan, incident and Stripe object."""
    settings = _settings()
    if settings.production:
        raise click.ClickException("reset refuses to run with APP_ENV=production")
    from api import devstack

    what = devstack.reset_plan(settings)
    click.echo("This forgets everything:")
    for line in what:
        click.echo(f"  - {line}")
    if not yes and not click.confirm("Go on?", default=False):
        raise SystemExit(1)
    for line in devstack.reset(settings):
        click.echo(line)


@main.command()
@click.option("--with-worker/--no-worker", default=True, show_default=True)
def run(with_worker: bool) -> None:
    """Everything for development: services, emulator, migrations, seed, API and a worker."""
    from api import devstack
    from common import db

    settings = _settings()
    started = time.monotonic()
    children = devstack.Children()
    devstack.check_ports(settings)
    try:
        with _services(settings) as services, devstack.stopping_on_signals(children) as stopped:
            devstack.check_dependencies(services)
            env = dict(os.environ)
            if settings.uses_stripe_emulator:
                env.update(devstack.start_emulator(settings, children))
            os.environ.update(env)
            _run(db.run_migrations)
            _run(lambda: _seed_catalog(load_settings()))
            key = devstack.dev_admin_key(settings)
            exe = sys.executable
            api_args = ["api", "--host", settings.host, "--port", str(settings.port)]
            children.start("API", [exe, "-m", "api.cli", *api_args], env)
            if with_worker:
                children.start("worker", [exe, "-m", "api.cli", "worker"], env)
            base = f"http://{settings.host}:{settings.port}"
            devstack.wait_until_answering(f"{base}/health", children, devstack.API_START_TIMEOUT)
            devstack.banner(settings, services, env, key, time.monotonic() - started)
            while not stopped():
                dead = children.dead()
                if dead is not None:
                    raise devstack.StartFailed(f"the {dead[0]} exited with code {dead[1]}")
                time.sleep(0.3)
            click.echo("stopping…")
    except click.ClickException:
        raise
    except KeyboardInterrupt:
        click.echo("stopping…")
    except Exception as e:
        raise devstack.StartFailed(f"could not start: {type(e).__name__}: {e}") from e
    finally:
        children.stop()


if __name__ == "__main__":
    main()
