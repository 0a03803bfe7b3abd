"""Run every benchmark in turn: ``make bench`` (or ``uv run python -m bench [name…]``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(names: list[str]) -> int:
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    chosen = [n if n.startswith("bench_") else f"bench_{n}" for n in names] or found
    failed = 0
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False)  # noqa: S603
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
