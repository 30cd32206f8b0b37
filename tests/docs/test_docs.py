"""The documentation in the repository keeps up with the code, and stays in the repository.

- docs/API.md describes every path of the OpenAPI document the server serves (as `METHOD
  /path`), and every Socket.IO event the server handles or emits, found by reading the server's
  code: a new route or event without its documentation fails here.
- Every Markdown link in README.md, CONTRIBUTING.md and docs/ resolves to a file (and heading)
  of this repository: a clone has nothing else, so links to `../shared/…` or to the web fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import unquote

from tests.support import Server

REPO = Path(__file__).resolve().parents[2]
API_MD = REPO / "docs" / "API.md"
# Where the server's Socket.IO code lives: every module of the package but the client side
# (the SDK, CLI and MCP server listen to the same events; they do not define them).
SERVER_CODE = [p for p in (REPO / "agenthub").rglob("*.py") if "client" not in p.parts]
# Calls whose first argument names an event: sio.emit / sio.on / sio.call / the hub's fan-out.
EVENT_CALLS = {"emit", "on", "call", "send_event", "_fanout", "_emit"}
KNOWN_EVENTS = {
    "connect",
    "disconnect",
    "connected",
    "message:send",
    "message:new",
    "room:join",
    "room:leave",
    "room:added",
    "room:removed",
    "presence:update",
}


def events_in(source: str) -> set[str]:
    """Event names in Python source: first string arguments of EVENT_CALLS, `@x.on("…")`
    decorators, `@x.event` handlers, and the keys of a `…handlers` dict literal."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in EVENT_CALLS and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Attribute) and deco.attr == "event":
                    found.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = [ast.unparse(t) for t in targets]
            if any("handlers" in n.lower() for n in named) and isinstance(node.value, ast.Dict):
                for key in node.value.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        found.add(key.value)
    return found


def server_events() -> set[str]:
    found: set[str] = set()
    for path in SERVER_CODE:
        found |= events_in(path.read_text())
    return found


# ---- docs/API.md against the code ----


def test_the_event_scanner_reads_every_form_of_event() -> None:
    source = """
sio.on("a:handled", handler, namespace="/agents")
await self.sio.emit("b:emitted", {}, to=sid)
self._fanout("c:fanned", data, room)
@sio.on("d:decorated")
async def d(sid, data): ...
@sio.event
async def e_event(sid): ...
self._handlers = {"f:dispatched": self._f}
log.info("not an event")
"""
    assert events_in(source) == {
        "a:handled",
        "b:emitted",
        "c:fanned",
        "d:decorated",
        "e_event",
        "f:dispatched",
    }


def test_the_scanner_finds_the_servers_events() -> None:
    # A scanner that finds nothing would pass the next test: it must at least see these.
    assert server_events() >= KNOWN_EVENTS


def test_every_socketio_event_is_in_api_md() -> None:
    text = API_MD.read_text()
    missing = sorted(e for e in server_events() if f"`{e}`" not in text)
    assert not missing, f"events of the server not described in docs/API.md: {missing}"


def test_every_openapi_path_is_in_api_md(server: Server) -> None:
    document = server.api.request("GET", "/openapi.json").json()
    text = API_MD.read_text()
    operations = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) > 15, operations
    missing = [op for op in operations if f"`{op}`" not in text]
    assert not missing, f"operations of /openapi.json not described in docs/API.md: {missing}"


# ---- links stay in the repository ----

DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The Markdown without code: links inside code blocks and spans are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links_in(text: str) -> list[str]:
    body = prose(text)
    return [
        *INLINE_LINK.findall(body),
        *REFERENCE.findall(body),
        *AUTOLINK.findall(body),
    ]


def anchors_of(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out: set[str] = set()
    for title in HEADING.findall(FENCE.sub("", text)):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).lower()
        out.add(re.sub(r"[^\w\- ]", "", plain).replace(" ", "-"))
    return out


def broken_links(text: str, where: Path) -> list[str]:
    """What is wrong with each link of `text`, a Markdown file at `where`."""
    problems = []
    for target in links_in(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            problems.append(f"{target}: leaves the repository")
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (where.parent / unquote(path_part)).resolve() if path_part else where
        if not resolved.is_relative_to(REPO) or (not resolved.exists() and path_part):
            problems.append(f"{target}: no such file in the repository")
            continue
        if not anchor or resolved.suffix != ".md":
            continue
        headings = anchors_of(resolved.read_text() if path_part else text)
        if anchor not in headings:
            problems.append(f"{target}: no heading #{anchor} in {resolved.name}")
    return problems


def test_the_link_checker_catches_what_it_must() -> None:
    text = (
        "[ok](API.md) [ok](API.md#2-errors) [ok](#title) ![img](../README.md)\n"
        "[out](../../shared/spec/API.md) [web](https://example.com/x) <https://example.org>\n"
        "[gone](nothing.md) [anchor](API.md#no-such-heading)\n"
        "`[in code](https://example.net)`\n"
        "```\n[in a block](https://example.net)\n```\n"
        "[ref]: https://example.com/ref\n"
        "# Title\n"
    )
    assert "https://example.net" not in links_in(text)
    problems = [p.split(":")[0] for p in broken_links(text, REPO / "docs" / "probe.md")]
    assert problems == [
        "../../shared/spec/API.md",
        "https",
        "nothing.md",
        "API.md#no-such-heading",
        "https",
        "https",
    ], problems


def test_every_markdown_link_resolves_inside_the_repository() -> None:
    assert API_MD in DOCS
    problems = {
        str(d.relative_to(REPO)): broken_links(d.read_text(), d) for d in DOCS if d.exists()
    }
    problems = {doc: found for doc, found in problems.items() if found}
    assert not problems, problems
