"""The agent commands of `agenthub` (login, rooms, send, history, tail, wait), run as a user
would: subprocesses against a real server, on both backends, each with its own config home."""

from __future__ import annotations

import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.support import Agent, Server, free_port

WAIT = 20.0  # seconds: the bound on any expected line of output


def agent_env(home: Path, agent: Agent | None = None, url: str | None = None) -> dict[str, str]:
    """A clean environment: its own config home, and the agent's URL/token only if given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENTHUB_", "XDG_", "DATABASE_URL", "JWT_", "POSTGRES_"))
    }
    env.update(XDG_CONFIG_HOME=str(home / "config"), HOME=str(home))
    if url is not None:
        env["AGENTHUB_URL"] = url
    if agent is not None:
        env["AGENTHUB_TOKEN"] = agent.token
    return env


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenthub", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """Exit `code`, one sentence on stderr, no traceback; returns that sentence."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Background:
    """A command left running: its output read line by line, with bounded waits."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agenthub", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._err_lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self._err_lines)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _read(stream: Any, sink: queue.Queue[str]) -> None:
        for line in stream:
            sink.put(line.rstrip("\n"))

    def line(self, within: float = WAIT) -> str:
        try:
            return self.stdout.get(timeout=within)
        except queue.Empty:
            pytest.fail(f"no output within {within}s; stderr: {self.drain_stderr()}")

    def stderr_line(self, containing: str, within: float = WAIT) -> str:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._err_lines.get(timeout=left)
            except queue.Empty:
                break
            self.stderr.append(line)
            if containing in line:
                return line
        pytest.fail(f"no stderr line with {containing!r} within {within}s: {self.stderr}")

    def drain_stderr(self) -> list[str]:
        while not self._err_lines.empty():
            self.stderr.append(self._err_lines.get())
        return self.stderr

    def exit_code(self, within: float = WAIT) -> int:
        return self.proc.wait(within)

    def __enter__(self) -> Background:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


# ---- login and configuration ----


def test_login_writes_a_private_config_file_that_commands_use(
    server: Server, alice: Agent, tmp_path: Path
) -> None:
    room = server.new_room(alice)
    env = agent_env(tmp_path)
    done = run(env, "login", "--url", server.base_url, "--token", alice.token)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"logged in to {server.base_url} as {alice.name} (agent)")
    path = tmp_path / "config" / "agenthub" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": server.base_url, "token": alice.token}

    listed = run(env, "rooms", "--json")  # no AGENTHUB_* in the environment: the file serves
    assert listed.returncode == 0, listed.stderr
    assert [r["slug"] for r in json.loads(listed.stdout)] == [room["slug"]]
    assert run(env, "rooms").stdout.split()[0] == room["slug"]

    # The token may come on stdin (kept out of the process list); the file is rewritten 0600.
    again = run(env, "login", "--url", server.base_url, "--json", stdin=alice.token + "\n")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["agent"]["name"] == alice.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_environment_variables_override_the_file(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    alices = server.new_room(alice)
    bobs = server.new_room(bob)
    env = agent_env(tmp_path)
    assert run(env, "login", "--url", server.base_url, "--token", alice.token).returncode == 0

    as_bob = run({**env, "AGENTHUB_TOKEN": bob.token}, "rooms", "--json")
    assert as_bob.returncode == 0, as_bob.stderr
    assert [r["slug"] for r in json.loads(as_bob.stdout)] == [bobs["slug"]]

    elsewhere = f"http://127.0.0.1:{free_port()}"
    failed = run({**env, "AGENTHUB_URL": elsewhere}, "rooms")
    assert f"cannot reach AgentHub at {elsewhere}" in assert_clean_failure(failed)

    as_alice = run(env, "rooms", "--json")
    assert [r["slug"] for r in json.loads(as_alice.stdout)] == [alices["slug"]]


def test_bad_token_and_missing_configuration_fail_cleanly(server: Server, tmp_path: Path) -> None:
    env = agent_env(tmp_path)
    refused = run(env, "login", "--url", server.base_url, "--token", "agt_AAAAAA_" + "x" * 43)
    assert "API token was refused" in assert_clean_failure(refused)
    assert not (tmp_path / "config" / "agenthub" / "config.json").exists()

    unconfigured = run(env, "rooms")
    assert "agenthub login" in assert_clean_failure(unconfigured, code=2)


# ---- send and history ----


def test_send_from_argument_and_stdin_then_history(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    room = server.new_room(alice, bob)
    slug = room["slug"]
    env = agent_env(tmp_path, alice, server.base_url)

    sent = run(env, "send", slug, "from an argument")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == f"sent #1 to {slug}"
    piped = run(env, "send", slug, "--json", stdin="from stdin\nsecond line\n")
    assert piped.returncode == 0, piped.stderr
    message = json.loads(piped.stdout)
    assert (message["seq"], message["body"], message["sender"], message["room"]) == (
        2,
        "from stdin\nsecond line",
        alice.name,
        slug,
    )
    assert message["clientMsgId"]

    shown = run(agent_env(tmp_path, bob, server.base_url), "history", slug)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("#1 ")
    assert lines[0].endswith(f"{alice.name}: from an argument")
    assert lines[1].startswith("#2 ")
    assert lines[1].endswith(f"{alice.name}: from stdin")
    assert lines[2] == "    second line"

    as_json = run(env, "history", slug, "--json", "--limit", "1")
    assert [(m["seq"], m["sender"]) for m in json_lines(as_json.stdout)] == [(2, alice.name)]
    after = run(env, "history", slug, "--json", "--after", "1")
    assert [m["seq"] for m in json_lines(after.stdout)] == [2]

    outsider = server.new_room(bob)
    refused = run(env, "send", outsider["slug"], "let me in")
    assert "not a member" in assert_clean_failure(refused)


# ---- tail ----


def test_tail_prints_history_then_follows_until_stopped(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    room = server.new_room(alice, bob)
    slug = room["slug"]
    for body in ("first", "second"):
        bob.post(f"/api/v1/rooms/{slug}/messages", {"body": body})
    env = agent_env(tmp_path, alice, server.base_url)

    once = run(env, "tail", slug, "-n", "1")
    assert once.returncode == 0, once.stderr
    assert once.stdout.splitlines()[0].endswith(f"{bob.name}: second")

    with Background(env, "tail", slug, "--lines", "1", "--follow", "--json") as tail:
        assert json.loads(tail.line())["body"] == "second"
        r = bob.post(f"/api/v1/rooms/{slug}/messages", {"body": "sent while tailing"})
        assert r.status_code == 201
        shown = json.loads(tail.line())
        assert (shown["seq"], shown["body"], shown["sender"]) == (3, "sent while tailing", bob.name)
        tail.proc.send_signal(signal.SIGINT)
        assert tail.exit_code() == 130
        assert not any("Traceback" in line for line in tail.drain_stderr())


# ---- wait ----


def test_wait_prints_a_message_that_arrives_and_exits_0(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    carol = server.new_agent()
    room = server.new_room(alice, bob, carol)
    slug = room["slug"]
    alice.post(f"/api/v1/rooms/{slug}/messages", {"body": "said before waiting"})
    env = agent_env(tmp_path, bob, server.base_url)
    with (
        Background(env, "wait", slug, "--timeout", "60") as anyone,
        Background(
            env, "wait", slug, "--from", alice.name, "--json", "--timeout", "60"
        ) as from_alice,
    ):
        anyone.stderr_line("waiting for a new message")
        from_alice.stderr_line("waiting for a new message")
        carol.post(f"/api/v1/rooms/{slug}/messages", {"body": "carol speaks"})
        assert anyone.line().endswith(f"{carol.name}: carol speaks")
        assert anyone.exit_code() == 0
        alice.post(f"/api/v1/rooms/{slug}/messages", {"body": "alice answers"})
        got = json.loads(from_alice.line())
        assert (got["seq"], got["sender"], got["body"]) == (3, alice.name, "alice answers")
        assert from_alice.exit_code() == 0
        assert from_alice.stdout.empty()  # carol's message was not printed


def test_wait_times_out_with_exit_1(server: Server, alice: Agent, tmp_path: Path) -> None:
    room = server.new_room(alice)
    env = agent_env(tmp_path, alice, server.base_url)
    with Background(env, "wait", room["slug"], "--timeout", "2") as waiting:
        waiting.stderr_line("waiting for a new message")  # it did start waiting...
        assert waiting.exit_code() == 1  # ...and gave up (a hang fails after WAIT)
        assert waiting.stdout.empty()
        timed_out = waiting.stderr_line(f"no new message in {room['slug']} within 2s")
        assert timed_out == f"error: no new message in {room['slug']} within 2s"
        assert not any("Traceback" in line for line in waiting.drain_stderr())


def test_wait_after_a_seq_beyond_the_newest_is_refused(
    server: Server, alice: Agent, tmp_path: Path
) -> None:
    """It would wait for a message that cannot come soon: refused, as the MCP tool does."""
    room = server.new_room(alice)
    alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "one"})
    env = agent_env(tmp_path, alice, server.base_url)
    result = run(env, "wait", room["slug"], "--after", "5", "--timeout", "60")
    line = assert_clean_failure(result, 2)
    assert f"--after 5 is beyond the newest message in '{room['slug']}' (seq 1)" in line
    assert "agenthub history" in line  # where a good seq comes from
    # The newest seq itself is fine: it waits (here until its short timeout).
    assert run(env, "wait", room["slug"], "--after", "1", "--timeout", "1").returncode == 1


@pytest.mark.parametrize("timeout", ["3601", "1e9", "inf"])
def test_wait_timeout_is_bounded(
    server: Server, alice: Agent, tmp_path: Path, timeout: str
) -> None:
    room = server.new_room(alice)
    env = agent_env(tmp_path, alice, server.base_url)
    line = assert_clean_failure(run(env, "wait", room["slug"], "--timeout", timeout), 2)
    assert "--timeout" in line
    assert "at most 3600 seconds" in line


def test_errors_say_what_to_do_next(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    bobs = server.new_room(bob)
    env = agent_env(tmp_path, alice, server.base_url)
    line = assert_clean_failure(run(env, "send", bobs["slug"], "hello"))
    assert f"not a member of room '{bobs['slug']}'" in line
    assert f"ask a member of '{bobs['slug']}' to add you" in line
    assert "`agenthub rooms`" in line

    line = assert_clean_failure(run(env, "history", "no-such-room-here"))
    assert "does not exist" in line
    assert "`agenthub rooms`" in line

    line = assert_clean_failure(run(env, "tail", bobs["slug"], "-n", "1"))
    assert "ask a member of" in line

    bad = {**env, "AGENTHUB_TOKEN": "agt_nosuch_" + "x" * 43}
    line = assert_clean_failure(run(bad, "rooms"))
    assert "agenthub login" in line
