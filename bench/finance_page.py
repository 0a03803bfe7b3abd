"""The finance review page at scale: ``python -m bench.finance_page`` (not a test).

Loads the same year as ``bench.finance`` (10,000 customers, 100,000 incidents, 100,000
invoices, by COPY into ``<database>_finance_bench``), starts one API process, signs in
through the page's form like a browser (a finance key for a session cookie), then times
each page a person asks for: median and worst of 5. ``/finance`` reads a keyset page of
invoices, the credits and the credit notes; ``/finance/reports`` runs the revenue, SLA and
worth-it reports over its window.
"""

from __future__ import annotations

import statistics
import time

import httpx

from bench.finance import finance_server


def _sign_in(c: httpx.Client, key: str) -> None:
    r = c.post("/finance/session", data={"key": key}, headers={"Origin": str(c.base_url)})
    assert r.status_code == 303, r.text  # the client keeps the session cookie


def _time(c: httpx.Client, name: str, path: str, params: dict[str, str]) -> httpx.Response:
    times = []
    for _ in range(5):
        t0 = time.monotonic()
        r = c.get(path, params=params)
        times.append(time.monotonic() - t0)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    print(
        f"{name:<34} median {statistics.median(times) * 1000:7.0f} ms,"
        f" worst {max(times) * 1000:7.0f} ms ({len(r.content):,} bytes)"
    )
    return r


def main() -> int:
    with (
        finance_server() as (port, _, key),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as c,
    ):
        _sign_in(c, key)
        first = _time(c, "/finance (25 invoices, credits)", "/finance", {})
        after = first.text.split('id="next-page" rel="next"', 1)[0].rsplit("after=", 1)[1]
        _time(c, "/finance next page", "/finance", {"after": after.split('"', 1)[0]})
        _time(c, "/finance status=paid limit=100", "/finance", {"status": "paid", "limit": "100"})
        customer = first.text.split("/finance?customer=", 1)[1].split('"', 1)[0]
        _time(c, "/finance one customer", "/finance", {"customer": customer})
        month = time.strftime("%Y-%m-01", time.gmtime(time.time() - 40 * 86400))
        days = {"from": month, "to": month[:8] + "28"}
        _time(c, "/finance one month (from/to)", "/finance", days)
        _time(c, "/finance/reports (12 months)", "/finance/reports", {})
        _time(c, "/finance/reports one month", "/finance/reports", days)
        t0 = time.monotonic()
        with c.stream("GET", "/finance/invoices.csv") as r:
            r.raise_for_status()
            rows = sum(chunk.count(b"\n") for chunk in r.iter_bytes()) - 1
        elapsed = time.monotonic() - t0
        print(f"/finance/invoices.csv (every invoice)  {rows:,} rows in {elapsed:.2f} s")

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
