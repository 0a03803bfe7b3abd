"""Totals of a schemathesis NDJSON report: requests, 5xx answers and failures by check."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Totals:
    requests: int = 0
    server_errors: int = 0
    # check name -> failing test cases, and the distinct (operation, failure title) pairs
    failures: Counter[str] = field(default_factory=Counter)
    distinct: set[tuple[str, str, str]] = field(default_factory=set)

    def line(self, role: str) -> str:
        by_check = ", ".join(f"{name} {n}" for name, n in sorted(self.failures.items()))
        return (
            f"{role}: {self.requests} requests, {self.server_errors} 5xx, "
            f"failures: {by_check or 'none'}"
        )


def _scenarios(path: Path) -> list[dict[str, Any]]:
    found = []
    with path.open() as lines:
        for line in lines:
            event = json.loads(line)
            if "ScenarioFinished" in event:
                found.append(event["ScenarioFinished"])
    return found


def totals(path: Path) -> Totals:
    out = Totals()
    for scenario in _scenarios(path):
        recorder = scenario.get("recorder") or {}
        for interaction in (recorder.get("interactions") or {}).values():
            out.requests += 1
            response = interaction.get("response") or {}
            if int(response.get("status_code") or 0) >= 500:
                out.server_errors += 1
        label = recorder.get("label", "?")
        for checks in (recorder.get("checks") or {}).values():
            for check in checks:
                if check.get("status") != "failure":
                    continue
                out.failures[check["name"]] += 1
                failure = (check.get("failure_info") or {}).get("failure") or {}
                out.distinct.add((label, check["name"], str(failure.get("message", ""))[:300]))
    return out
