"""Driving Debian's Chromium with Playwright for Python, for the console's tests and bench.

Playwright's own browser download (`playwright install`) is never used: the system's
`chromium` runs through `executable_path`, with the flags that keep it from reaching the
network by itself (this machine has none beyond loopback). Without Chromium or Playwright the
tests skip, or fail when AGENTHUB_REQUIRE_BROWSER=1 (as `.ci/run` sets)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent.parent / "js" / "node_modules" / "axe-core" / "axe.min.js"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_ready() -> str:
    """The Chromium to drive, or a skip (a failure under AGENTHUB_REQUIRE_BROWSER=1)."""
    why = None
    path = chromium_path()
    if path is None:
        why = "Chromium is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            why = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if why is None and not AXE.is_file():
        why = "axe-core is missing from tests/js/node_modules (make js-deps)"
    if why is not None:
        if os.environ.get("AGENTHUB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the console's browser tests cannot run: {why}")
        pytest.skip(f"the console's browser tests need Chromium: {why}")
    assert path is not None
    return path


async def launch(playwright: Any, executable: str) -> Any:
    return await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now. The script is
    injected inline, so the page's context must bypass CSP (the console's own pages never need
    that: see test_no_csp_violation)."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
