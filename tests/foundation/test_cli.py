"""The support-billing command, run as a user would (a real process, the real database)."""

from __future__ import annotations

import os
import subprocess
import sys

from common import apikeys
from common.embedded import Services
from common.tables import ApiKey


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


async def test_keys_create_prints_the_key_last_and_it_authenticates(
    services: Services, clean_db: None
) -> None:
    done = _cli("keys", "create", "--role", "helpdesk", "--name", "zendesk")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    principal = await apikeys.authenticate(key)
    assert principal is not None
    assert (principal.role, principal.name) == ("helpdesk", "zendesk")
    row = await ApiKey.objects().first()
    assert row is not None
    assert key not in (row.secret_hash, row.prefix)
    assert key.startswith(row.prefix)

    listed = _cli("keys", "list")
    assert row.prefix in listed.stdout
    assert key not in listed.stdout

    revoked = _cli("keys", "revoke", row.prefix)
    assert revoked.returncode == 0, revoked.stderr
    assert await apikeys.authenticate(key) is None


def test_unknown_role_and_bad_config_fail_clearly(services: Services) -> None:
    done = _cli("keys", "create", "--role", "root", "--name", "x")
    assert done.returncode != 0
    assert "root" in done.stderr
    done = _cli("keys", "list", env={"PORT": "abc"})
    assert done.returncode != 0
    assert "configuration error: PORT must be an integer" in done.stderr
