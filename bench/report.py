"""docs/BENCHMARKS.md from one matrix run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Figures of single experiments (bench/profile.py), written by hand with their load averages;
# appended to every generated docs/BENCHMARKS.md so that a new run does not lose them.
EXPERIMENTS = Path(__file__).resolve().parent / "EXPERIMENTS.md"

NODE, PG, SQLITE = "node-ref (PostgreSQL)", "AgentHub (PostgreSQL)", "AgentHub (SQLite)"
TWO_NODES = "AgentHub, 2 nodes (PostgreSQL)"
# Above this 1-minute load average per core at the start (or this plus the run's own share at
# the end), the figures were measured on a busy machine: the report says they are provisional.
BUSY_LOAD_PER_CORE = 0.5
# The load a run adds itself by its end (servers, PostgreSQL and generators: up to about one
# runnable process per core), which the load average at the end includes and at the start does not.
OWN_LOAD_PER_CORE = 1.0
TWO_NODE_TEXT = [
    "The column **AgentHub, 2 nodes** is two AgentHub processes of one hub (one PostgreSQL",
    "database, a Redis of their own): in every room the first half of the agents connect to node",
    "A and send the room's messages between them (same messages, same rate and same unacked",
    "window per room as the single node's), the other half connect to node B and only receive,",
    "so every delivery measured crossed from node A to node B through Redis. Its latencies are",
    "send→`message:new` on node B; its server CPU and RSS are both nodes' together.",
    "",
    "This machine has 2 cores for both nodes, PostgreSQL, Redis and the load generator: a second",
    "node adds no CPU, only a second process and the Redis hop, so two nodes are not expected to",
    "carry more than one here. The box, not the design, is the ceiling: the saturation target",
    "asks only that two nodes keep 0.8 times one node's throughput; on machines with a core per",
    "node, the nodes add capacity.",
]

SETTING_TEXT = {
    "saturation": "rooms x agents, every agent sends its messages as fast as acks return "
    "(at most `window` unacked per socket)",
    "paced": "every agent sends at a fixed rate; the measure is latency at a load both can carry",
    "fan-out": "few large rooms: each message goes to every member",
    "connections": "idle authenticated sockets held open; server memory per socket",
}


def _ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return a / b


def _at_most(value: float | None, goal: float) -> bool | None:
    return None if value is None else value <= goal


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def cpu_per_message_ms(r: dict[str, Any]) -> float | None:
    return r["cpu"]["server_s"] * 1000 / r["acked"] if r.get("acked") else None


def message_table(results: dict[str, dict[str, Any]]) -> list[str]:
    targets = list(results)
    rows = [
        ("acked messages", lambda r: r["acked"]),
        ("acked messages/s", lambda r: r["throughput"]),
        (
            "send→ack p50 / p90 / p99 (ms)",
            lambda r: " / ".join(_fmt(r["ack_ms"][k]) for k in ("50", "90", "99")),
        ),
        (
            "send→message:new p50 / p99 (ms)",
            lambda r: " / ".join(_fmt(r["delivery_ms"][k]) for k in ("50", "99")),
        ),
        ("deliveries", lambda r: r["deliveries"]),
        ("complete, in order, gapless", lambda r: "yes" if r["complete"] else "**no**"),
        (
            "delivery p99 of each run (ms; latency and CPU above: medians)",
            lambda r: " / ".join(_fmt(x["p99_ms"]) for x in r.get("runs", ())) or "one run",
        ),
        ("server CPU (s)", lambda r: r["cpu"]["server_s"]),
        ("server CPU per acked message (ms)", lambda r: cpu_per_message_ms(r)),
        ("database CPU (s, all postgres processes)", lambda r: r["cpu"]["database_s"]),
        ("load generator CPU (s)", lambda r: r["cpu"]["generator_s"]),
        ("send phase (s)", lambda r: r["seconds"]),
        ("server RSS at end (MiB)", lambda r: r["server_rss_mb"]),
        ("machine load average 1 / 5 / 15 min, at end", lambda r: r.get("load_average")),
    ]
    lines = ["| | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for title, get in rows:
        lines.append(f"| {title} | " + " | ".join(_fmt(get(results[t])) for t in targets) + " |")
    problems = [(t, results[t]["problems"], results[t]["failed"]) for t in targets]
    for target, found, failed in problems:
        if found or failed:
            lines.append("")
            lines.append(f"{target}: failed sends {failed}; " + "; ".join(found[:5]))
    return lines


def connection_table(results: dict[str, dict[str, Any]]) -> list[str]:
    targets = list(results)
    rows = [
        ("sockets asked / held", lambda r: f"{r['sockets']} / {r['held']}"),
        (
            "connect p50 / p99 (ms)",
            lambda r: f"{_fmt(r['connect_ms']['50'])} / {_fmt(r['connect_ms']['99'])}",
        ),
        ("all connected in (s)", lambda r: r["connect_wall_s"]),
        ("connections set up per second", lambda r: r.get("connects_per_s")),
        (
            "set-ups per second of each run (rate, CPU and KB per socket: medians)",
            lambda r: (
                " / ".join(_fmt(x["connects_per_s"]) for x in r["runs"]) if r.get("runs") else None
            ),
        ),
        ("server CPU per connection set-up (ms)", lambda r: r.get("connect_cpu_ms_per_socket")),
        (
            "PostgreSQL / generators' CPU per set-up (ms)",
            lambda r: (
                f"{_fmt(r.get('connect_database_cpu_ms_per_socket'))} / "
                f"{_fmt(r.get('connect_generator_cpu_ms_per_socket'))}"
            ),
        ),
        (
            "server RSS before / after (MiB)",
            lambda r: f"{_fmt(r['server_rss_before_mb'])} / {_fmt(r['server_rss_after_mb'])}",
        ),
        ("server memory per socket (KB)", lambda r: r["kb_per_socket"]),
        ("server CPU while all sit idle (% of a core)", lambda r: r.get("idle_cpu_percent")),
        ("machine load average 1 / 5 / 15 min, at end", lambda r: r.get("load_average")),
    ]
    lines = ["| | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for title, get in rows:
        lines.append(f"| {title} | " + " | ".join(_fmt(get(results[t])) for t in targets) + " |")
    return lines


def verdicts(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]

    def row(name: str, value: float | None, goal: str, ok: bool | None) -> None:
        met = "—" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {name} | {_fmt(value, 2)} | {goal} | {met} |")

    sat = results.get("saturation", {})
    if NODE in sat and PG in sat:
        r = _ratio(sat[PG]["throughput"], sat[NODE]["throughput"])
        row(
            "saturation: AgentHub / node-ref acked msgs/s",
            r,
            "≥ 3.00, delivery complete and ordered",
            None if r is None else r >= 3 and sat[PG]["complete"],
        )
    for name in ("paced", "fan-out"):
        res = results.get(name, {})
        if NODE not in res or PG not in res:
            continue
        ours, theirs = res[PG], res[NODE]
        for title, got, goal in (
            ("p99 send→delivery", lambda r: r["delivery_ms"]["99"], 0.5),
            ("p50 send→delivery", lambda r: r["delivery_ms"]["50"], 0.7),
            ("server CPU per message", cpu_per_message_ms, 0.7),
        ):
            r = _ratio(got(ours), got(theirs))
            row(f"{name}: AgentHub / node-ref {title}", r, f"≤ {goal:.2f}", _at_most(r, goal))
    conn = results.get("connections", {})
    if PG in conn:
        c = conn[PG]
        row(
            "connections: sockets held by AgentHub",
            float(c["held"]),
            f"{c['sockets']}",
            c["held"] >= c["sockets"],
        )
        row(
            "connections: AgentHub KB per socket",
            c["kb_per_socket"],
            "≤ 18",
            _at_most(c["kb_per_socket"], 18),
        )
        if NODE in conn:
            r = _ratio(conn[PG].get("connects_per_s"), conn[NODE].get("connects_per_s"))
            row(
                "connections: AgentHub / node-ref set-ups per second",
                r,
                "≥ 1.00",
                None if r is None else r >= 1,
            )
    paced = results.get("paced", {})
    if PG in paced and TWO_NODES in paced:
        r = _ratio(paced[TWO_NODES]["delivery_ms"]["99"], paced[PG]["delivery_ms"]["99"])
        row(
            "paced: 2 nodes (across) / 1 node p99 send→delivery",
            r,
            "≤ 2.00, delivery complete",
            None if r is None else r <= 2 and paced[TWO_NODES]["complete"],
        )
    if PG in sat and TWO_NODES in sat:
        r = _ratio(sat[TWO_NODES]["throughput"], sat[PG]["throughput"])
        row(
            "saturation: 2 nodes / 1 node acked msgs/s (2 cores in all)",
            r,
            "≥ 0.80, delivery complete",
            None if r is None else r >= 0.8 and sat[TWO_NODES]["complete"],
        )
    if PG in sat and SQLITE in sat:
        r = _ratio(sat[SQLITE]["throughput"], sat[PG]["throughput"])
        row(
            "SQLite / PostgreSQL saturation msgs/s (AgentHub)",
            r,
            "≥ 0.70",
            None if r is None else r >= 0.7,
        )
    return lines


def busy_machine(facts: dict[str, str]) -> list[str]:
    """A warning paragraph when the machine was loaded by other work during the run."""
    cores = 1
    match = [v for k, v in facts.items() if k == "cpu"]
    if match and match[0].rsplit(",", 1)[-1].strip().split(" ")[0].isdigit():
        cores = int(match[0].rsplit(",", 1)[-1].strip().split(" ")[0])

    def load(when: str) -> float:
        value = facts.get(f"load average at {when} (1, 5, 15 min)", "")
        return float(value.split(",")[0]) if value else 0.0

    start, end = load("start"), load("end")
    if (
        start <= BUSY_LOAD_PER_CORE * cores
        and end <= (BUSY_LOAD_PER_CORE + OWN_LOAD_PER_CORE) * cores
    ):
        return []
    return [
        "**Provisional figures:** the machine was shared with other work during this run (load",
        f"average {start:.2f} at the start and {end:.2f} at the end, the run's own share",
        f"included, on {cores} cores, see Machine); re-run `make bench` on a quiet machine before",
        "relying on them.",
        "",
    ]


def markdown(
    facts: dict[str, str],
    results: dict[str, dict[str, dict[str, Any]]],
    chosen: list[Any],
    command: str,
    elapsed: float,
) -> str:
    if any(NODE in by_target for by_target in results.values()):
        who = [
            "AgentHub and node-ref (the seed's Node stack, from `AGENTHUB_NODE_REF`) ran one",
            "after the other on the same machine and the same PostgreSQL cluster, each setting on",
            "a fresh",
        ]
    else:
        who = [
            "node-ref (the seed's Node stack) was not present (`AGENTHUB_NODE_REF` unset): these",
            "are AgentHub's own rows only, with no comparison. Each setting ran on a fresh",
        ]
    busy = busy_machine(facts)
    out = [
        "# Benchmarks",
        "",
        "Written by `bench/matrix.py` from one invocation; nothing here is edited by hand.",
        *who,
        "server and a fresh database, with HTTP and socket rate limits raised by configuration.",
        "The load generator shares the CPUs with them. Rows are judged on the generator built",
        "on the official `socket.io-client` (`bench/js`, driven by `bench/jsgen.py`); sections",
        'marked "Python generator" are the same settings driven by `bench/loadgen.py`.',
        "",
        *busy,
        *([*TWO_NODE_TEXT, ""] if any(TWO_NODES in r for r in results.values()) else []),
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in facts.items()],
        "",
        "## Reproduce",
        "",
        "<!-- not-run: the whole matrix takes about an hour and needs PostgreSQL -->",
        "```sh",
        "make bench        # = .venv/bin/python -m bench.matrix",
        f"# this run: {command}  ({elapsed / 60:.1f} minutes)",
        "```",
        "",
        "## Against the targets",
        "",
        *verdicts(results),
        "",
    ]
    for setting in chosen:
        res = results.get(setting.name)
        if not res:
            continue
        base = setting.name.split(" · ", 1)[0]
        out += [f"## {setting.name}", "", SETTING_TEXT.get(base, ""), ""]
        if setting.plan is None:
            agents = max((int(r.get("agents") or 1) for r in res.values()), default=1)
            whose = (
                "one agent's JWT"
                if agents == 1
                else f"{agents} agents' JWTs ({setting.sockets // agents} sockets each, spread so"
                " that sockets opening together are different agents')"
            )
            out += [
                f"{setting.sockets} sockets, {whose}, opened by 4 processes "
                "(50 handshakes in flight each).",
                "",
            ]
            out += connection_table(res)
        else:
            p = setting.plan
            pace = f"{p.rate:g} msgs/s per agent" if p.rate else "as fast as acks return"
            out += [
                f"{p.rooms} rooms x {p.agents} agents, {p.messages} messages per agent, {pace}, "
                f"≤ {p.window} unacked per socket, {p.processes} generator processes.",
                "",
            ]
            out += message_table(res)
        out.append("")
    if EXPERIMENTS.is_file():
        out += [EXPERIMENTS.read_text().rstrip(), ""]
    return "\n".join(out) + "\n"
