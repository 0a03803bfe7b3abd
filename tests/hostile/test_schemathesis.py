"""schemathesis against a real API process: every operation, each role, all checks, stateful.

The budget (examples per operation, per phase) comes from ``HOSTILE_MAX_EXAMPLES``: CI runs a
small one with a fixed seed; ``make test-hostile`` a longer one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from billing import seed
from common import apikeys
from tests.hostile.conftest import LiveApi
from tests.hostile.report import totals

ROLES = ("admin", "helpdesk", "finance")
SEED = int(os.environ.get("HOSTILE_SEED", "20261122"))
MAX_EXAMPLES = int(os.environ.get("HOSTILE_MAX_EXAMPLES", "10"))


def _schemathesis(api: LiveApi, key: str, report: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    return subprocess.run(
        [
            str(exe),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{api.url}/schema/openapi.json",
            # No --checks: every check runs by default, and a CLI list would override the
            # per-operation settings in schemathesis.toml.
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--seed",
            str(SEED),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--no-shrink",
            "--header",
            f"Authorization: Bearer {key}",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


async def test_schemathesis_finds_no_server_error_and_no_contract_violation(
    live_api: LiveApi, tmp_path: Path
) -> None:
    await seed.seed_if_empty()
    outcomes = {}
    for role in ROLES:
        _, key = await apikeys.create_key(f"schemathesis {role}", role)
        report = tmp_path / f"{role}.ndjson"
        run = _schemathesis(live_api, key, report)
        live_api.check_alive()
        outcomes[role] = (run, totals(report))
    for role, (_, found) in outcomes.items():
        print(found.line(role))
        for label, check, message in sorted(found.distinct):
            print(f"  {label} [{check}] {message.splitlines()[0] if message else ''}")
    for role, (run, found) in outcomes.items():
        assert found.server_errors == 0, f"{role}: {found.line(role)}"
        assert run.returncode == 0, f"{role}:\n{run.stdout[-20000:]}"
