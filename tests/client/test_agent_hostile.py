"""The agent side pointed at a hostile or broken hub (tests/client/hostile_hub.py): the SDK raises
its typed errors, and the CLI exits with one sentence — no traceback — within a bounded time, never
follows a redirect, and never prints the hub's control characters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agenthub.client import (
    AgentHubClient,
    BadResponse,
    ConnectionError,
    ResponseTooLarge,
)
from tests.client.hostile_hub import HostileHub
from tests.client.test_agent_cli import agent_env

TOKEN = "agt_AAAAAA_" + "x" * 43
BOUND = 60  # seconds: the subprocess is killed (and the test fails) past this


def cli(hub: HostileHub, home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**agent_env(home, url=hub.url), "AGENTHUB_TOKEN": TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "agenthub", *args],
        env=env,
        capture_output=True,
        timeout=BOUND,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[bytes]) -> str:
    stderr = done.stderr.decode("utf-8")
    assert done.returncode == 1, (done.returncode, stderr[-2000:])
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-2000:]
    assert lines[0].startswith("error: ")
    assert "\x1b" not in stderr
    assert "\r" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("behaviour", "sessions", "args", "said"),
    [
        ("huge", True, ["rooms"], "larger than"),
        ("nested", True, ["rooms"], "not the JSON"),
        ("nested", False, ["rooms"], "not the JSON"),
        ("not-json", False, ["rooms"], "not the JSON"),
        ("bad-shape", False, ["rooms"], "malformed room"),
        ("bad-shape", False, ["history", "general"], "malformed message"),
        ("endless", False, ["history", "general", "--after", "0", "-n", "1000"], "order"),
        ("endless", False, ["history", "general", "-n", "5"], "for a limit of 5"),
        ("garbage", True, ["rooms"], "cannot reach"),
        ("trickle", True, ["wait", "general", "--timeout", "3"], "did not answer within"),
    ],
)
def test_cli_fails_in_one_sentence(
    behaviour: str, sessions: bool, args: list[str], said: str, tmp_path: Path
) -> None:
    with HostileHub(behaviour, sessions=sessions) as hub:
        line = one_line_error(cli(hub, tmp_path, *args))
    assert said in line
    assert TOKEN[11:] not in line


def test_cli_follows_no_redirect(tmp_path: Path) -> None:
    with HostileHub("redirect") as elsewhere:
        with HostileHub("redirect", location=f"{elsewhere.url}/steal") as hub:
            line = one_line_error(cli(hub, tmp_path, "rooms"))
            assert "do not follow redirects" in line
            assert f"{elsewhere.url}/steal" in line
            line = one_line_error(cli(hub, tmp_path, "tail", "general", "-n", "1"))
            assert "do not follow redirects" in line
        assert elsewhere.requests == []


def test_cli_socket_follows_no_redirect_to_another_origin(tmp_path: Path) -> None:
    with HostileHub("redirect") as elsewhere:
        location = f"{elsewhere.url}/socket.io/?EIO=4&transport=websocket"
        with HostileHub("socket-redirect", location=location) as hub:
            line = one_line_error(cli(hub, tmp_path, "tail", "general", "-n", "0", "-f"))
        assert "redirect" in line
        assert elsewhere.requests == []  # the JWT never went there


def test_cli_escapes_the_hubs_error_sentence(tmp_path: Path) -> None:
    with HostileHub("escape") as hub:
        line = one_line_error(cli(hub, tmp_path, "rooms"))
    # The hub's sentence, escaped, then the CLI's own next step (hints.explain).
    said, _, hint = line.partition("; ")
    assert said == "error: no\\x1b]0;owned\\x07\\x1b[2J\\r\\u202eway"
    assert hint == "this needs a permission you do not have"


# ---- the SDK's typed errors ----


@pytest.mark.parametrize(
    ("behaviour", "sessions", "error"),
    [
        ("huge", True, ResponseTooLarge),
        ("trickle", True, ConnectionError),
        ("trickle", False, ConnectionError),
        ("nested", True, BadResponse),
        ("nested", False, BadResponse),
        ("redirect", False, BadResponse),
        ("redirect", True, BadResponse),
        ("not-json", False, BadResponse),
        ("bad-shape", False, BadResponse),
        ("garbage", True, ConnectionError),
    ],
)
async def test_sdk_raises_its_typed_error(
    behaviour: str, sessions: bool, error: type[Exception]
) -> None:
    with HostileHub(behaviour, sessions=sessions, location="http://127.0.0.1:9/") as hub:
        async with AgentHubClient(hub.url, TOKEN, timeout=2, attempts=2) as client:
            with pytest.raises(error):
                await client.rooms()


async def test_sdk_refuses_counts_the_contract_does_not_allow() -> None:
    with HostileHub("endless") as hub:
        async with AgentHubClient(hub.url, TOKEN, timeout=5) as client:
            with pytest.raises(BadResponse, match="for a limit of 10"):
                await client.history("general", limit=10)
            with pytest.raises(BadResponse, match="out of order"):
                await client.catch_up("general", 0)
            with pytest.raises(BadResponse, match="out of order"):
                await client.wait_for_messages("general", 0, 1)


async def test_sdk_socket_refuses_a_redirect() -> None:
    with HostileHub("redirect") as elsewhere:
        location = f"{elsewhere.url}/socket.io/?EIO=4&transport=websocket"
        with HostileHub("socket-redirect", location=location) as hub:
            async with AgentHubClient(hub.url, TOKEN, timeout=5) as client:
                with pytest.raises(BadResponse, match="redirect"):
                    await client.messages(["general"]).start()
        assert elsewhere.requests == []
