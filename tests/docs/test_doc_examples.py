"""Every shell and Python example in README.md, CONTRIBUTING.md and docs/ runs, against a live
server, as a reader would paste it.

The convention (CONTRIBUTING.md, "Documentation examples"):

- A fenced block tagged ```sh, ```bash, ```shell, ```python or ```py is an example and is run.
  Any other tag (```text, ```json, ```promql, no tag …) is not code to run.
- A runnable block that cannot run here (it starts a server in the foreground, needs Claude
  Code, waits for another agent …) has, as the last non-blank line before its fence, a comment
  `<!-- not-run: why -->`. It is reported as skipped with that reason; the reason is required,
  and a marker that is not followed by a runnable block is an error, so nothing is skipped
  silently.
- Python blocks run with this venv's python; shell blocks with `bash -e -o pipefail` in the
  a scratch copy of the repository's tracked files (never the checkout), with this venv's
  `bin/` first on PATH (so `agenthub` is the one under test) and a temporary HOME. Each has 60 s.
- The server is a fresh one (SQLite) after `agenthub seed`: agents `founder-ceo`, `agent-alpha`,
  `agent-beta`, rooms `general` and `ops`, and a question from agent-alpha in `general`.
  The environment holds `AGENTHUB_URL` (its URL), `AGENTHUB_TOKEN` (agent-beta's token),
  `AGENTHUB_PEER_TOKEN` (agent-alpha's), and the server's own database settings (for
  `agenthub seed`, `agenthub agents …`). In shell blocks, the placeholders the README uses are
  replaced: `http://127.0.0.1:3000` by the server's URL, `agt_XXXXXX_…` by an admin's token,
  `agt_AAAAAA_…` by agent-alpha's and `agt_BBBBBB_…` by agent-beta's. Python examples read
  `AGENTHUB_URL` and `AGENTHUB_TOKEN` from the environment instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Server, cli, start_server, stop_process

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").rglob("*.md"))]
RUNNABLE = {"sh": "shell", "bash": "shell", "shell": "shell", "python": "python", "py": "python"}
FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")
BLOCK_TIMEOUT_S = 60


@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository
    line: int  # of the opening fence, 1-based
    language: str  # "shell" or "python"
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks_in(text: str, doc: str) -> tuple[list[Block], list[str]]:
    """The runnable blocks of a Markdown text, and the problems with its markers."""
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    pending: tuple[int, str] | None = None  # a marker waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = NOT_RUN.match(line)
        opened = FENCE_OPEN.match(line)
        if marker:
            if pending is not None:
                problems.append(f"{doc}:{pending[0]}: not-run marker with no runnable block")
            pending = (i + 1, marker["reason"].strip())
            i += 1
            continue
        if not opened:
            if line.strip() and pending is not None:
                problems.append(f"{doc}:{pending[0]}: not-run marker with no runnable block")
                pending = None
            i += 1
            continue
        indent, fence, info = opened["indent"], opened["fence"], opened["info"].lower()
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        language = RUNNABLE.get(info)
        if language is None:
            if pending is not None:
                problems.append(f"{doc}:{pending[0]}: not-run marker before a ```{info} block")
                pending = None
            continue
        reason = pending[1] if pending else None
        if pending is not None and not reason:
            problems.append(f"{doc}:{pending[0]}: not-run marker without a reason")
        start = i - len(body) - 1  # 1-based line of the opening fence
        blocks.append(Block(doc, start, language, "\n".join(body) + "\n", reason))
        pending = None
    if pending is not None:
        problems.append(f"{doc}:{pending[0]}: not-run marker with no runnable block")
    return blocks, problems


def all_blocks() -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    problems: list[str] = []
    for path in DOCS:
        if path.exists():
            found, wrong = blocks_in(path.read_text(), str(path.relative_to(REPO)))
            blocks += found
            problems += wrong
    return blocks, problems


BLOCKS, MARKER_PROBLEMS = all_blocks()


# ---- the convention itself ----


def test_the_extractor_reads_the_convention() -> None:
    text = "\n".join(
        [
            "```sh",
            "echo one",
            "```",
            "<!-- not-run: starts a server -->",
            "```bash",
            "make run",
            "```",
            "```text",
            "not code",
            "```",
            "1. a list item:",
            "",
            "   ```python",
            "   print('indented')",
            "   ```",
            "<!-- not-run:   -->",
            "```py",
            "pass",
            "```",
            "<!-- not-run: dangling -->",
            "prose in between",
            "```sh",
            "echo two",
            "```",
        ]
    )
    blocks, problems = blocks_in(text, "probe.md")
    assert [(b.line, b.language, b.code, b.not_run) for b in blocks] == [
        (1, "shell", "echo one\n", None),
        (5, "shell", "make run\n", "starts a server"),
        (13, "python", "print('indented')\n", None),
        (17, "python", "pass\n", ""),
        (22, "shell", "echo two\n", None),
    ]
    assert problems == [
        "probe.md:16: not-run marker without a reason",
        "probe.md:20: not-run marker with no runnable block",
    ]


def test_markers_are_well_formed() -> None:
    assert not MARKER_PROBLEMS, MARKER_PROBLEMS


def test_examples_are_found_and_most_of_them_run() -> None:
    """The count that keeps skipping honest: what runs, what is marked, and why."""
    ran = [b for b in BLOCKS if b.not_run is None]
    marked = {b.id: b.not_run for b in BLOCKS if b.not_run is not None}
    assert {b.language for b in ran} == {"shell", "python"}, [b.id for b in ran]
    assert len(ran) >= 6, (len(ran), marked)
    # Each marked block is a visible skip with its reason (see test_example_runs), never a
    # silent one; this line puts the tally in the test's output when it fails.
    assert all(marked.values()), marked


# ---- running them ----


@dataclass
class World:
    server: Server
    env: dict[str, str]
    replacements: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = Path(tmp_path_factory.mktemp("doc-examples"))
    srv = start_server("sqlite", f"sqlite:///{data / 'agenthub.db'}", data)
    try:
        seeded = cli(srv.env, "seed", "--json")
        assert seeded.returncode == 0, seeded.stderr
        tokens = {a["agent"]: a["token"] for a in json.loads(seeded.stdout)["agents"]}
        alpha = srv.api.login(tokens["agent-alpha"])
        r = srv.api.request(
            "POST",
            "/api/v1/rooms/general/messages",
            jwt=alpha,
            json={"body": "Is anyone there?"},
        )
        assert r.status_code == 201, r.text
        home = data / "home"
        home.mkdir()
        env = {**srv.env}
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / "config"),
            AGENTHUB_URL=srv.base_url,
            AGENTHUB_TOKEN=tokens["agent-beta"],
            AGENTHUB_PEER_TOKEN=tokens["agent-alpha"],
        )
        replacements = {
            "http://127.0.0.1:3000": srv.base_url,
            "agt_XXXXXX_…": srv.admin.token,
            "agt_AAAAAA_…": tokens["agent-alpha"],
            "agt_BBBBBB_…": tokens["agent-beta"],
        }
        yield World(srv, env, replacements)
    finally:
        srv.api.close()
        stop_process(srv.proc)


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's tracked files for the blocks to run in: a block may write
    files (`cp .env.example .env`), and a `.env` left in the checkout would be read by every
    server the suite starts afterwards."""
    root = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # A repository of its own, for examples that read one (`git log -1 | agenthub send …`).
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@localhost"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "docs examples"]):
        subprocess.run([*git, *step], cwd=root, capture_output=True, check=True)
    return root


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example_runs(block: Block, world: World, scratch_repo: Path, tmp_path: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"not-run: {block.not_run}")
    code = block.code
    if block.language == "shell":
        for placeholder, value in world.replacements.items():
            code = code.replace(placeholder, value)
        script = tmp_path / "example.sh"
        script.write_text(code)
        command = ["bash", "-e", "-o", "pipefail", str(script)]
    else:
        script = tmp_path / "example.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
    # A session of its own: a block's children (a follower left running) die with it.
    proc = subprocess.Popen(
        command,
        cwd=scratch_repo,
        env=world.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{block.id} did not finish within {BLOCK_TIMEOUT_S}s:\n{block.code}")
    assert proc.returncode == 0, (
        f"{block.id} exited {proc.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{out[-2000:]}\n--- stderr\n{err[-3000:]}"
    )
    assert "Traceback" not in err, err[-3000:]
