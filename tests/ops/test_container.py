"""The container tests: the Dockerfile's image and the LAN compose stack, run for real with podman.

The image is built once per run (session fixture; podman's layer cache makes a rebuild of an
unchanged lock take seconds). Without podman these skip, and fail when
AGENTHUB_REQUIRE_CONTAINERS=1 (as `.ci/run` sets).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from tests.ops import podman as pm
from tests.support import JWT_SECRET, free_port

NS = "/agents"
WAIT = 15


@pytest.fixture(scope="session")
def postgres_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pm.BackgroundBuild]:
    """The compose test's PostgreSQL image, built while AgentHub's image builds."""
    pm.ensure_podman()
    log = tmp_path_factory.mktemp("build") / "postgres-build.log"
    build = pm.BackgroundBuild(pm.POSTGRES_IMAGE, pm.SCRIPTS / "postgres", log)
    try:
        yield build
    finally:
        build.stop()


@pytest.fixture(scope="session")
def image(postgres_build: pm.BackgroundBuild) -> str:
    pm.build(pm.IMAGE, pm.ROOT)
    return pm.IMAGE


@pytest.fixture(scope="session")
def postgres_image(postgres_build: pm.BackgroundBuild) -> str:
    return postgres_build.wait()


def seed(container: str) -> dict[str, str]:
    """`agenthub seed` inside the container: agent name -> API token (room `general` has both)."""
    out = json.loads(pm.podman("exec", container, "agenthub", "seed", "--json", timeout=120))
    return {a["agent"]: a["token"] for a in out["agents"] if a["created"]}


def login(base_url: str, token: str) -> str:
    r = httpx.post(f"{base_url}/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


async def converse(base_url: str, alpha_jwt: str, beta_jwt: str, tag: str) -> list[str]:
    """alpha asks over Socket.IO, beta hears it live and answers over REST, alpha hears that."""
    alpha, beta = socketio.AsyncSimpleClient(), socketio.AsyncSimpleClient()
    for client, jwt in ((alpha, alpha_jwt), (beta, beta_jwt)):
        await client.connect(
            base_url,
            auth={"token": jwt},
            namespace=NS,
            transports=["websocket"],
            wait_timeout=WAIT,
        )
    try:
        question = f"{tag}: question from alpha?"
        send = {"roomId": "general", "body": question}
        ack = await alpha.call("message:send", send, timeout=WAIT)
        assert ack["ok"] is True, ack
        assert (await next_message(beta))["body"] == question
        answer = f"{tag}: answer from beta"
        async with httpx.AsyncClient(base_url=base_url, timeout=WAIT) as http:
            r = await http.post(
                "/api/v1/rooms/general/messages",
                json={"body": answer},
                headers={"Authorization": f"Bearer {beta_jwt}"},
            )
        assert r.status_code == 201, r.text
        assert (await next_message(alpha, skip=question))["body"] == answer
        return [question, answer]
    finally:
        await alpha.disconnect()
        await beta.disconnect()


async def next_message(client: socketio.AsyncSimpleClient, skip: str | None = None) -> Any:
    for _ in range(50):  # bounded: presence events and the client's own echo come first
        event = await client.receive(timeout=WAIT)
        if event[0] == "message:new" and event[1]["body"] != skip:
            return event[1]
    raise AssertionError("no message:new among 50 events")


def history(base_url: str, jwt: str) -> list[str]:
    r = httpx.get(
        f"{base_url}/api/v1/rooms/general/messages?limit=100",
        headers={"Authorization": f"Bearer {jwt}"},
    )
    assert r.status_code == 200, r.text
    return [m["body"] for m in sorted(r.json()["messages"], key=lambda m: m["seq"])]


@pytest.fixture
def container(image: str) -> Iterator[tuple[str, str]]:
    name = f"agenthub-test-{uuid.uuid4().hex[:10]}"
    port = free_port()
    pm.podman(
        "run",
        "-d",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{port}:3000",
        "-e",
        f"JWT_SECRET={JWT_SECRET}",
        "-v",
        f"{name}-data:/var/lib/agenthub",
        image,
    )
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        pm.podman("rm", "-f", "-t", "0", name, check=False)
        pm.podman("volume", "rm", "-f", f"{name}-data", check=False)


def test_image_serves_two_agents_and_stops_cleanly_on_sigterm(
    container: tuple[str, str],
) -> None:
    name, base_url = container
    pm.wait_ready(f"{base_url}/readyz", name)
    assert httpx.get(f"{base_url}/readyz").json()["status"] == "ready"
    # The image's HEALTHCHECK exists (kept by the Docker format) and passes.
    pm.podman("healthcheck", "run", name, timeout=60)
    assert pm.podman("exec", name, "id", "-u") != "0"  # not root

    tokens = seed(name)
    alpha, beta = login(base_url, tokens["agent-alpha"]), login(base_url, tokens["agent-beta"])
    said = asyncio.run(converse(base_url, alpha, beta, "image"))
    assert history(base_url, beta) == said
    # The SQLite file is in the volume, not in the container's own layer.
    assert "agenthub.db" in pm.podman("exec", name, "ls", "/var/lib/agenthub").split()

    pm.podman("stop", "-t", "30", name, timeout=60)  # SIGTERM, SIGKILL only after 30 s
    state = json.loads(pm.podman("inspect", name, "--format", "{{json .State}}"))
    assert state["Status"] == "exited", state
    assert state["ExitCode"] == 0, (state, pm.podman("logs", name, check=False))


def test_lan_stack_keeps_every_message_across_down_and_up(
    image: str, postgres_image: str, tmp_path: Path
) -> None:
    exe = pm.ensure_compose()
    project = f"agenthubtest{uuid.uuid4().hex[:8]}"
    port = free_port()
    env_file = tmp_path / ".env"  # what a deployer writes from .env.example
    env_file.write_text(
        f"POSTGRES_PASSWORD=pw-{uuid.uuid4().hex}\n"
        f"JWT_SECRET={JWT_SECRET}\n"
        "ALLOWED_ORIGINS=http://192.168.1.0/24\n"
        "AGENTHUB_LISTEN=127.0.0.1\n"  # the test's traffic stays on loopback
        f"AGENTHUB_PORT={port}\n"
    )
    base_url = f"http://127.0.0.1:{port}"
    with pm.podman_socket(tmp_path) as docker_host, pm.HealthPump(project):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")},
            "DOCKER_HOST": docker_host,
            "AGENTHUB_TEST_IMAGE": image,
            "AGENTHUB_TEST_POSTGRES_IMAGE": postgres_image,
        }

        def compose(*args: str, check: bool = True) -> str:
            done = subprocess.run(
                [
                    str(exe),
                    "--project-name",
                    project,
                    "--env-file",
                    str(env_file),
                    "-f",
                    str(pm.ROOT / "compose.lan.yml"),
                    "-f",
                    str(pm.SCRIPTS / "compose.test.yml"),
                    *args,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if check:
                assert done.returncode == 0, f"compose {args}:\n{done.stdout}\n{done.stderr}"
            return done.stdout

        app = f"{project}_agenthub_1"
        try:
            compose("up", "-d", "--no-build")
            pm.wait_ready(f"{base_url}/readyz", app)
            tokens = seed(app)
            alpha = login(base_url, tokens["agent-alpha"])
            beta = login(base_url, tokens["agent-beta"])
            said = asyncio.run(converse(base_url, alpha, beta, "before"))
            assert history(base_url, alpha) == said

            # Only named volumes: nothing anonymous is orphaned by `down`.
            for service, volume in (("agenthub", "agenthub-data"), ("postgres", "pgdata")):
                mounts = json.loads(
                    pm.podman("inspect", f"{project}_{service}_1", "--format", "{{json .Mounts}}")
                )
                assert [m.get("Name") for m in mounts] == [f"{project}_{volume}"], mounts

            compose("down")  # without -v: the named volumes stay
            assert pm.podman("ps", "-aq", "--filter", f"name={app}") == ""
            compose("up", "-d", "--no-build")
            pm.wait_ready(f"{base_url}/readyz", app)
            # Same database: the agents, their tokens and every message are still there.
            alpha = login(base_url, tokens["agent-alpha"])
            beta = login(base_url, tokens["agent-beta"])
            assert history(base_url, beta) == said
            said += asyncio.run(converse(base_url, alpha, beta, "after"))
            assert history(base_url, alpha) == said
        finally:
            compose("down", "-v", "-t", "30", check=False)
