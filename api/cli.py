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

from common.config import ConfigError, Settings, configure_logging, load_settings
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

        await db.open_pool(max_size=4)
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
    from billing import catalog
    from billing.stripe_gateway import close, configure_from_settings

    configure_from_settings(settings)
    try:
        created = await catalog.seed_if_empty()
        click.echo(f"catalog: {'seeded ' + ', '.join(created) if created else 'already present'}")
        synced = await catalog.sync_to_stripe()
        click.echo(f"stripe: {len(synced)} plan version(s) synced")
    finally:
        await close()


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
    """Stripe catalog sync and event replay."""


@stripe_group.command("sync-catalog")
def stripe_sync_catalog() -> None:
    """Create the Products and Prices (lookup keys <plan>_v<version>_<interval>) in Stripe."""
    settings = _settings()
    with _services(settings, redis=False):
        from billing import catalog
        from billing.stripe_gateway import close, configure_from_settings

        configure_from_settings(settings)

        async def sync() -> list[str]:
            try:
                return await catalog.sync_to_stripe()
            finally:
                await close()

        for line in _run(sync):
            click.echo(f"synced {line}")


@stripe_group.command("dead")
@click.option("--limit", default=100, show_default=True, help="How many, newest first.")
def stripe_dead(limit: int) -> None:
    """List Stripe events stored dead (they cannot be applied as sent), with their error."""
    settings = _settings()
    with _services(settings, redis=False):
        from billing import inbox

        rows = _run(lambda: inbox.dead(limit))
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
        from billing import inbox
        from billing.stripe_gateway import close, configure_from_settings
        from common.audit import acting_as

        configure_from_settings(settings)

        async def replay() -> list[tuple[str, str]]:
            results = []
            try:
                with acting_as("cli:replay"):
                    for event_id in await inbox.mark_for_replay(list(event_ids), failed):
                        try:
                            results.append((event_id, await inbox.process(event_id)))
                        except Exception as e:  # report each failure and go on with the rest
                            results.append((event_id, f"failed: {e!r}"))
            finally:
                await close()
            return results

        results = _run(replay)
        for event_id, outcome in results:
            click.echo(f"{event_id}: {outcome}")
        if not results:
            click.echo("no matching events")
        if any(o.startswith("failed") for _, o in results):
            raise SystemExit(1)


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
        from billing.stripe_gateway import close, configure_from_settings
        from common.audit import acting_as
        from sla import enforcement

        configure_from_settings(settings)

        async def retry() -> list[tuple[str, str]]:
            results = []
            try:
                with acting_as("cli:credits"):
                    ids = list(credit_ids) or await billing.failed_credit_ids()
                    for credit_id in ids:
                        try:
                            job = await enforcement.retry_credit(credit_id)
                            done = (await enforcement.settle_credit(job.incident_id)).done
                        except Exception as e:  # report each and go on with the rest
                            done = f"failed: {e}"
                        results.append((credit_id, done))
            finally:
                await close()
            return results

        results = _run(retry)
        for credit_id, outcome in results:
            click.echo(f"{credit_id}: {outcome}")
        if not results:
            click.echo("no failed service credits")
        if any(o.startswith("failed") for _, o in results):
            raise SystemExit(1)


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
def demo() -> None:
    """The README's tour against a running `make run`, told step by step."""
    from api import demo as tour

    raise SystemExit(tour.main(_settings()))


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
