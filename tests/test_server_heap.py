"""The serving process's garbage collector, once started (agenthub/server.py, `settle_heap`):
the startup's objects are exempted and young collections are rarer. In a process of its own,
since freezing the heap is for the whole interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from agenthub.server import GC_YOUNG_THRESHOLD, settle_heap
before = gc.get_threshold()
settle_heap()
print(json.dumps({"frozen": gc.get_freeze_count(), "before": before,
                  "after": gc.get_threshold(), "young": GC_YOUNG_THRESHOLD}))
"""


def test_settle_heap_freezes_the_startup_and_collects_young_objects_less_often() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    state = json.loads(out)
    assert state["frozen"] > 10_000  # the imported modules' objects, at least
    assert state["after"] == [state["young"], *state["before"][1:]]
    assert state["young"] > state["before"][0]
