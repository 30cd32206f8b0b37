"""The console: how soon a committed message appears in a browser's page, and how many bytes a
first load of a room costs.

Starts `agenthub serve` on a fresh SQLite database, signs Debian's Chromium (through
Playwright, tests/console/browser.py) into the console as the admin, opens a room, and has
another agent send N messages over REST, one at a time. A MutationObserver in the page stamps
each message's `<li>` when it is added (the page's clock is the machine's, as Python's is).
A message commits between the moment its POST leaves and the moment its 201 returns (the API
answers after commit), so for each message:

  upper bound of commit→DOM = DOM time - POST sent
  lower bound of commit→DOM = DOM time - 201 received (negative when the page was first)

Run: python -m bench.console_latency [-n 200]. Not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.matrix import agenthub
from tests.console.browser import CHROMIUM_ARGS, chromium_path

OBSERVER = """() => {
  window.__seen = {};
  const list = document.getElementById("messages");
  new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    for (const r of records) for (const n of r.addedNodes) {
      if (n.dataset && n.dataset.seq) window.__seen[n.dataset.seq] = now;
    }
  }).observe(list, { childList: true });
}"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def until(page: Any, condition: str, within: float = 60) -> None:
    """Poll `condition` in the page (wait_for_function would evaluate a string, which the
    console's CSP forbids)."""
    deadline = time.monotonic() + within
    while not await page.evaluate(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(condition)
        await asyncio.sleep(0.05)


def first_load_bytes(http: httpx.Client, page_path: str) -> dict[str, int]:
    import re

    page = http.get(page_path)
    sizes = {page_path: len(page.content)}
    for url in re.findall(r'(?:src|href)="(/console/static/[^"]+)"', page.text):
        sizes[url] = len(http.get(url).content)
    return sizes


async def measure(url: str, admin_token: str, n: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    http = httpx.AsyncClient(base_url=url, timeout=30)

    async def session(token: str) -> dict[str, str]:
        r = await http.post("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
        return {"Authorization": f"Bearer {r.json()['token']}"}

    auth = await session(admin_token)
    agent = {"name": "writer", "displayName": "Writer"}
    await http.post("/api/v1/agents", json=agent, headers=auth)
    issued = await http.post("/api/v1/agents/writer/tokens", json={}, headers=auth)
    writer = await session(issued.json()["token"])
    await http.post("/api/v1/rooms", json={"slug": "bench", "name": "Bench"}, headers=auth)
    await http.post("/api/v1/rooms/bench/members", json={"agent": "writer"}, headers=auth)

    executable = chromium_path()
    assert executable, "Chromium is not installed"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        await page.goto(url + "/console/sign-in")
        await page.get_by_label("API token").fill(admin_token)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/console/rooms")
        cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
        await page.goto(url + "/console/rooms/bench")
        await until(page, "document.getElementById('conn').textContent === 'live'")
        await page.evaluate(OBSERVER)
        sent: dict[int, tuple[float, float]] = {}
        for i in range(n):
            started = time.time() * 1000
            r = await http.post(
                "/api/v1/rooms/bench/messages", json={"body": f"m{i}"}, headers=writer
            )
            acked = time.time() * 1000
            assert r.status_code == 201, r.text
            sent[r.json()["seq"]] = (started, acked)
            await asyncio.sleep(0.02)
        await page.wait_for_function(f"Object.keys(window.__seen).length >= {n}", timeout=60_000)
        seen = await page.evaluate("window.__seen")
        await browser.close()

    await http.aclose()
    with httpx.Client(base_url=url, cookies={"agenthub_console": cookies["agenthub_console"]}) as c:
        sizes = first_load_bytes(c, "/console/rooms/bench")
    upper = [seen[str(seq)] - s for seq, (s, _a) in sent.items()]
    lower = [seen[str(seq)] - a for seq, (_s, a) in sent.items()]
    rest = [a - s for s, a in sent.values()]
    return {"upper": upper, "lower": lower, "rest": rest, "sizes": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="messages")
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with agenthub(f"sqlite:///{workdir / 'agenthub.db'}", workdir) as running:
            result = asyncio.run(measure(running.url, running.admin_token, args.n))
    print(f"uptime before: {load}")
    print(f"{args.n} messages over REST, one at a time, to a room open in the console (ms)")
    for name, key in (
        ("commit→DOM, upper bound (DOM - POST sent)", "upper"),
        ("commit→DOM, lower bound (DOM - 201 received)", "lower"),
        ("REST send→201", "rest"),
    ):
        v = result[key]
        print(
            f"{name}: p50 {percentile(v, 50):.1f} / p90 {percentile(v, 90):.1f} / "
            f"p99 {percentile(v, 99):.1f} / max {max(v):.1f} / mean {statistics.mean(v):.1f}"
        )
    sizes = result["sizes"]
    for path, size in sizes.items():
        print(f"  {path}: {size} bytes")
    print(f"first load of a room page: {sum(sizes.values())} bytes (uncompressed)")


if __name__ == "__main__":
    main()
