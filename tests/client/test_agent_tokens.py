"""Token hygiene on the agent side: whitespace stripped, a malformed token refused without being
quoted, a config file others can read or write refused, a warning before a token travels over
plain http to another machine — for the CLI, the MCP server and the SDK."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from agenthub.client import AgentHubClient, Unauthorized
from agenthub.client.transport import plaintext_warning
from tests.client.test_agent_cli import agent_env, assert_clean_failure, run
from tests.client.test_mcp import call, fails, mcp_session
from tests.support import Agent, Server


def secret_of(token: str) -> str:
    # `agt_<6>_<43>`: both parts may hold "_" themselves (base64url), so by position
    return token[len("agt_xxxxxx_") :]


def write_config(home: Path, url: str, token: str, mode: int = 0o600) -> Path:
    path = home / "config" / "agenthub" / "config.json"
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    path.write_text(json.dumps({"url": url, "token": token}) + "\r\n")
    os.chmod(path, mode)
    return path


def test_surrounding_whitespace_is_not_part_of_the_token(
    server: Server, alice: Agent, tmp_path: Path
) -> None:
    room = server.new_room(alice)["slug"]
    env = {**agent_env(tmp_path, url=server.base_url), "AGENTHUB_TOKEN": alice.token + "\r"}
    done = run(env, "rooms")
    assert done.returncode == 0, done.stderr
    assert room in done.stdout
    # The same from a file written on Windows.
    write_config(tmp_path / "crlf", server.base_url + " ", " " + alice.token + "\r\n")
    done = run(agent_env(tmp_path / "crlf"), "rooms")
    assert done.returncode == 0, done.stderr
    assert room in done.stdout
    # And typed (or piped) into login.
    logged = run(agent_env(tmp_path / "login"), "login", "--url", server.base_url,
                 stdin=alice.token + "\r\n")  # fmt: skip
    assert logged.returncode == 0, logged.stderr


@pytest.mark.parametrize("bad", ["agt_ÄÄÄÄÄÄ_{s}", "agt_AAAAAA_{s}\x7f", "agt_AAAAAA\r\n_{s}"])
def test_a_malformed_token_is_refused_without_being_quoted(
    server: Server, tmp_path: Path, bad: str
) -> None:
    secret = "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS"
    token = bad.format(s=secret)
    env = {**agent_env(tmp_path, url=server.base_url), "AGENTHUB_TOKEN": token}
    line = assert_clean_failure(run(env, "rooms"))
    assert "malformed" in line
    assert secret not in line


async def test_mcp_tools_strip_the_token_and_never_quote_it(
    server: Server, alice: Agent, tmp_path: Path
) -> None:
    env = {"AGENTHUB_URL": server.base_url, "AGENTHUB_TOKEN": alice.token + "\r\n"}
    async with mcp_session(env, tmp_path / "ok") as client:
        assert (await call(client, "list_rooms"))["you"] == alice.name
    token = "agt_AAAAAA_" + secret_of(alice.token) + "é"
    env = {"AGENTHUB_URL": server.base_url, "AGENTHUB_TOKEN": token}
    async with mcp_session(env, tmp_path / "bad") as client:
        text = await fails(client, "list_rooms")
    assert "malformed" in text
    assert secret_of(alice.token) not in text


@pytest.mark.parametrize(
    ("file_mode", "folder_mode", "said"),
    [
        (0o644, 0o700, "can be read or written by other users (mode 0644)"),
        (0o620, 0o700, "can be read or written by other users (mode 0620)"),
        (0o600, 0o777, "can be written by other users (mode 0777)"),
    ],
)
def test_a_config_file_others_can_read_or_write_is_refused(
    server: Server, alice: Agent, tmp_path: Path, file_mode: int, folder_mode: int, said: str
) -> None:
    path = write_config(tmp_path, server.base_url, alice.token, file_mode)
    os.chmod(path.parent, folder_mode)
    try:
        line = assert_clean_failure(run(agent_env(tmp_path), "rooms"), code=2)
    finally:
        os.chmod(path.parent, 0o700)
    assert said in line
    assert "chmod 600" in line
    assert secret_of(alice.token) not in line
    # Fixed as the message says, it is used again.
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    assert run(agent_env(tmp_path), "rooms").returncode == 0


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://127.0.0.1:3000", False),
        ("http://127.8.9.10:3000", False),
        ("http://localhost:3000", False),
        ("http://[::1]:3000", False),
        ("https://hub.example.com", False),
        ("http://hub.example.com:3000", True),
        ("http://10.0.0.5:3000", True),
        ("http://[2001:db8::1]:3000", True),
    ],
)
def test_plaintext_to_another_machine_is_flagged(url: str, warned: bool) -> None:
    assert (plaintext_warning(url) is not None) is warned


async def test_the_sdk_warns_before_sending_a_token_over_plain_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="agenthub.client"):
        async with AgentHubClient("http://192.0.2.10:3000", "agt_AAAAAA_x"):
            pass  # constructed only: nothing is sent
    assert "unencrypted to http://192.0.2.10:3000" in caplog.text
    assert "agt_AAAAAA_x" not in caplog.text


def test_the_cli_warns_on_stderr(tmp_path: Path) -> None:
    # A malformed token is refused before any request, so nothing leaves this machine.
    env = {**agent_env(tmp_path, url="http://192.0.2.10:3000"), "AGENTHUB_TOKEN": "agt_é"}
    done = run(env, "rooms")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1
    assert "unencrypted to http://192.0.2.10:3000" in lines[0]
    assert lines[1].startswith("error: the API token is malformed")


async def test_the_sdk_refuses_a_malformed_token_as_unauthorized(server: Server) -> None:
    async with AgentHubClient(server.base_url, "agt_ÄÄÄ_secretpart") as client:
        with pytest.raises(Unauthorized, match="malformed") as caught:
            await client.rooms()
    assert "secretpart" not in str(caught.value)
