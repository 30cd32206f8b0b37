"""The package as users install it: a wheel built from this tree, installed with no extras into a
fresh virtual environment, runs the agent's real-time paths against a live server.

The suite's own venv holds the dev extras, so a runtime dependency missing from
`[project.dependencies]` (it happened: aiohttp, the Socket.IO client's transport, was only in
`[dev]`) passes every other test and fails every user. Here the CLI (`login`, `send`, `wait`,
`tail --follow`), the MCP server (`wait_for_messages`, `who_is_here`) and the SDK's `messages()`
run from the fresh venv's own `bin/`. One venv per session (built once, about 30-60 s with a
warm pip cache). The server is the suite's usual one on SQLite: what is under test is the
client's packaging, not storage.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

from tests.support import Agent, Server, start_server, stop_process, uniq

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 300
WAIT_S = 30.0  # the bound on any one wait below


def pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"pip {args[0]} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this tree, built from a copy (a build writes build/ and *.egg-info)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "agenthub", src / "agenthub", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = work / "dist"
    pip("wheel", "--no-deps", "-w", str(dist), str(src))
    (built,) = dist.glob("agenthub-*.whl")
    return built


@pytest.fixture(scope="session")
def user_bin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`bin/` of a fresh venv where `pip install agenthub-….whl` ran, with no extras."""
    root = tmp_path_factory.mktemp("user-venv")
    venv.EnvBuilder(with_pip=False, clear=True).create(root)
    python = root / "bin" / "python"
    # The suite's pip installs into it (`--python`): no ensurepip, no byte-compiling up front;
    # both would only cost time.
    pip(
        "--python", str(python), "install", "--no-compile", "--disable-pip-version-check",
        str(wheel),
    )  # fmt: skip
    # Nothing of the suite's venv leaks in: the dev-only packages are absent.
    absent = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('pytest') is None)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert absent.stdout.strip() == "True"
    return root / "bin"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = Path(tmp_path_factory.mktemp("wheel-hub"))
    srv = start_server("sqlite", f"sqlite:///{data / 'agenthub.db'}", data)
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


@pytest.fixture(scope="module")
def pair(hub: Server) -> tuple[Agent, Agent, str]:
    """Two agents and a room they share."""
    alice, bob = hub.new_agent(), hub.new_agent()
    room = hub.new_room(alice, bob)
    return alice, bob, str(room["slug"])


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no AGENTHUB_* of the suite, a home of its own for `login`'s file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTHUB_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **extra)
    return env


def run(
    user_bin: Path, env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(user_bin / "agenthub"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT_S + 30,
        check=False,
    )


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """Lines of a child's pipe as they come, on a thread, so that reads can be bounded."""
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


def next_line(found: queue.Queue[str], what: str) -> str:
    try:
        return found.get(timeout=WAIT_S)
    except queue.Empty:
        raise AssertionError(f"no {what} within {WAIT_S}s") from None


def drain(found: queue.Queue[str]) -> str:
    out = []
    while not found.empty():
        out.append(found.get())
    return "".join(out)


def test_the_installed_package_imports_every_module(user_bin: Path, tmp_path: Path) -> None:
    """Every module imports from runtime dependencies alone (a dev-only import fails here)."""
    script = (
        "import importlib, pkgutil, agenthub\n"
        "for m in pkgutil.walk_packages(agenthub.__path__, 'agenthub.'):\n"
        "    if '.migrations' not in m.name and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "import socketio, aiohttp\n"
        "socketio.AsyncClient()\n"
    )
    done = subprocess.run(
        [str(user_bin / "python"), "-c", script],
        env=user_env(tmp_path),
        cwd=tmp_path,  # not the repository: the installed package, not the source tree
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_cli_login_send_wait_and_tail_follow(
    user_bin: Path, hub: Server, pair: tuple[Agent, Agent, str], tmp_path: Path
) -> None:
    alice, bob, room = pair
    env = user_env(tmp_path, AGENTHUB_URL=hub.base_url)
    logged = run(user_bin, env, "login", stdin=alice.token + "\n")
    assert logged.returncode == 0, logged.stderr
    assert alice.name in logged.stdout

    sent = run(user_bin, env, "send", room, "from the installed CLI", "--json")
    assert sent.returncode == 0, sent.stderr
    first = json.loads(sent.stdout)

    # wait: blocks on the real-time connection until bob speaks.
    waiting = subprocess.Popen(
        [str(user_bin / "agenthub"), "wait", room, "--timeout", str(WAIT_S), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiting.stdout is not None
        assert waiting.stderr is not None
        out_lines, err_lines = lines_of(waiting.stdout), lines_of(waiting.stderr)
        started = next_line(err_lines, "'waiting' line from agenthub wait")
        assert started.startswith("waiting for a new message"), started
        r = bob.post(f"/api/v1/rooms/{room}/messages", {"body": "answer for wait"})
        assert r.status_code == 201, r.text
        got = json.loads(next_line(out_lines, "message from agenthub wait"))
        waiting.wait(timeout=WAIT_S)
    finally:
        stop_process(waiting)
    assert waiting.returncode == 0, drain(err_lines)
    assert (got["body"], got["sender"]) == ("answer for wait", bob.name)

    # tail --follow: the last message, then a live one.
    follow = subprocess.Popen(
        [str(user_bin / "agenthub"), "tail", room, "--follow", "-n", "1", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        out_lines = lines_of(follow.stdout)
        assert json.loads(next_line(out_lines, "history line"))["body"] == "answer for wait"
        r = bob.post(f"/api/v1/rooms/{room}/messages", {"body": "live for tail"})
        assert r.status_code == 201, r.text
        live = json.loads(next_line(out_lines, "live line from tail --follow"))
        assert (live["body"], live["seq"]) == ("live for tail", first["seq"] + 2)
    finally:
        stop_process(follow)
        assert follow.stderr is not None
        complaints = follow.stderr.read()
    assert "cannot open a real-time connection" not in complaints, complaints


async def test_mcp_server_waits_and_sees_who_is_here(
    user_bin: Path, hub: Server, pair: tuple[Agent, Agent, str], tmp_path: Path
) -> None:
    alice, bob, room = pair
    params = StdioServerParameters(
        command=str(user_bin / "agenthub"),
        args=["mcp"],
        env=user_env(tmp_path, AGENTHUB_URL=hub.base_url, AGENTHUB_TOKEN=alice.token),
        cwd=str(tmp_path),
    )
    r = alice.get(f"/api/v1/rooms/{room}/messages", params={"limit": 1})
    newest = r.json()["messages"][0]["seq"] if r.json()["messages"] else 0
    async with Client(params, read_timeout_seconds=WAIT_S + 10) as client:
        here = await client.call_tool("who_is_here", {"room": room})
        assert not here.is_error, [c.text for c in here.content if isinstance(c, TextContent)]
        assert here.structured_content is not None
        assert alice.name in here.structured_content["present"]

        async def bob_speaks() -> None:
            await asyncio.sleep(0.5)  # most likely after the wait began; either way it is found
            await asyncio.to_thread(
                bob.post, f"/api/v1/rooms/{room}/messages", {"body": "answer for MCP"}
            )

        speaking = asyncio.create_task(bob_speaks())
        async with asyncio.timeout(WAIT_S + 10):
            waited = await client.call_tool(
                "wait_for_messages",
                {"room": room, "after_seq": newest, "timeout_seconds": WAIT_S},
            )
        await speaking
    assert not waited.is_error, [c.text for c in waited.content if isinstance(c, TextContent)]
    result: dict[str, Any] | None = waited.structured_content
    assert result is not None
    assert not result["timedOut"]
    assert [m["body"] for m in result["messages"]] == ["answer for MCP"]


def test_sdk_messages_from_the_installed_package(
    user_bin: Path, hub: Server, pair: tuple[Agent, Agent, str], tmp_path: Path
) -> None:
    alice, bob, room = pair
    body = uniq("sdk")
    script = tmp_path / "listen.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from agenthub.client import AgentHubClient\n\n"
        "async def main() -> None:\n"
        "    env = os.environ\n"
        "    async with AgentHubClient(env['AGENTHUB_URL'], env['AGENTHUB_TOKEN']) as hub:\n"
        "        async with hub.messages([sys.argv[1]]) as stream:\n"
        "            print('listening', flush=True)\n"
        "            async for message in stream:\n"
        "                print(message.body, flush=True)\n"
        "                return\n\n"
        "asyncio.run(main())\n"
    )
    env = user_env(tmp_path, AGENTHUB_URL=hub.base_url, AGENTHUB_TOKEN=alice.token)
    listener = subprocess.Popen(
        [str(user_bin / "python"), str(script), room],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        out_lines = lines_of(listener.stdout)
        ready = next_line(out_lines, "'listening' from the SDK script")
        assert ready.strip() == "listening", ready
        r = bob.post(f"/api/v1/rooms/{room}/messages", {"body": body})
        assert r.status_code == 201, r.text
        assert next_line(out_lines, "message from messages()").strip() == body
        listener.wait(timeout=WAIT_S)
    finally:
        stop_process(listener)
        assert listener.stderr is not None
        err = listener.stderr.read()
    assert listener.returncode == 0, err[-2000:]


def test_the_wheel_ships_the_consoles_files(wheel: Path) -> None:
    """The console is served from the package: its static files must be in the wheel."""
    static = REPO / "agenthub" / "console" / "static"
    with zipfile.ZipFile(wheel) as built:
        names = set(built.namelist())
    for path in static.iterdir():
        assert f"agenthub/console/static/{path.name}" in names, path.name
