"""Does `POST /api/v1/sessions` answer a wrong token in a time that tells which prefixes exist?

Starts `agenthub serve` on a fresh SQLite database (rate limits off), then sends N failed logins
of each kind, interleaved so that load on the machine hits every kind alike, and prints the
median and the 10th/90th percentiles of the client-side time per kind. A good login is measured
too, for scale. The kinds that reveal nothing about stored tokens (unknown prefix, known prefix
with a wrong secret, revoked token) should have the same median; a malformed token is refused
before any lookup (its sender already knows it is malformed).

    python -m bench.token_oracle            # N = 200 per kind
    python -m bench.token_oracle -n 50
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.matrix import agenthub


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="requests per kind")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with agenthub(f"sqlite:///{workdir / 'agenthub.db'}", workdir) as running:
            http = httpx.Client(base_url=running.url, timeout=30)
            admin_jwt = http.post(
                "/api/v1/sessions", headers={"Authorization": f"Bearer {running.admin_token}"}
            ).json()["token"]
            auth = {"Authorization": f"Bearer {admin_jwt}"}
            revoked = http.post("/api/v1/agents/bench-admin/tokens", json={}, headers=auth)
            revoked_token = revoked.json()["token"]
            r = http.delete(f"/api/v1/tokens/{revoked.json()['prefix']}", headers=auth)
            assert r.status_code == 204, r.text

            known_prefix = running.admin_token[:10]

            def secret() -> str:
                return secrets.token_urlsafe(32)

            kinds: dict[str, Callable[[], str]] = {
                "malformed": lambda: "agt_short",
                "unknown prefix": lambda: f"agt_{secrets.token_urlsafe(6)[:6]}_{secret()}",
                "known prefix, wrong secret": lambda: f"{known_prefix}_{secret()}",
                "revoked token": lambda: revoked_token,
                "good token (201)": lambda: running.admin_token,
            }
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            order = [kind for kind in kinds for _ in range(args.n)]
            for kind in list(kinds) * 3:  # warm-up (the dummy hash is made on first use)
                http.post("/api/v1/sessions", headers={"Authorization": f"Bearer {kinds[kind]()}"})
            random.shuffle(order)
            for kind in order:
                headers = {"Authorization": f"Bearer {kinds[kind]()}"}
                started = time.perf_counter()
                r = http.post("/api/v1/sessions", headers=headers)
                times[kind].append((time.perf_counter() - started) * 1000)
                expected = 201 if kind.startswith("good") else 401
                assert r.status_code == expected, (kind, r.status_code, r.text)
            http.close()

    print(f"POST /api/v1/sessions, {args.n} requests per kind (ms, client side)")
    print(f"{'kind':<28} {'median':>8} {'p10':>8} {'p90':>8}")
    for kind, values in times.items():
        print(
            f"{kind:<28} {statistics.median(values):>8.2f} "
            f"{percentile(values, 10):>8.2f} {percentile(values, 90):>8.2f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
