"""CPU and memory of processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
# A server's process, or every node's of a hub (summed), or none.
Pids = int | Sequence[int] | None


def _pids(pids: Pids) -> list[int]:
    if not pids:
        return []
    return [pids] if isinstance(pids, int) else [p for p in pids if p]


@dataclass
class Snapshot:
    server: float
    database: float
    generator: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    utime, stime = (int(x) for x in fields[11:13])
    return (utime + stime) / TICK


def cpu_of(pids: Pids) -> float:
    """User + system CPU of a server's processes, summed."""
    return sum(cpu_seconds(p) for p in _pids(pids))


def database_pids() -> list[int]:
    """Every PostgreSQL server process on the machine (the benchmark's database is one of them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def snapshot(server_pid: Pids) -> Snapshot:
    """CPU so far of the server (all its nodes), the database, and this process (workers report
    their own)."""
    return Snapshot(
        server=cpu_of(server_pid),
        database=sum(cpu_seconds(p) for p in database_pids()),
        generator=cpu_seconds(os.getpid()),
    )


def cpu_between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    return {
        "server_s": round(after.server - before.server, 2),
        "database_s": round(after.database - before.database, 2),
        "generator_s": round(after.generator - before.generator, 2),
    }


def rss_bytes(pid: Pids) -> int:
    """Resident memory of the server (summed over its nodes)."""
    total = 0
    for one in _pids(pid):
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total
