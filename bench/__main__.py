"""``make bench``: the one-table run (``bench.run``); ``python -m bench NAME…``: single benches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    names = [a for a in argv if not a.startswith("-")]
    if not names:
        from bench import run

        return run.main(argv)
    chosen = [n if n.startswith("bench_") else f"bench_{n}" for n in names]
    failed = 0
    for name in chosen:
        if name not in found:
            print(f"no such benchmark: {name} (have: {', '.join(found)})")
            return 2
        print(f"\n=== {name} ===", flush=True)
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False)  # noqa: S603
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
