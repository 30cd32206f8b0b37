"""Rootful podman for the container tests: set-up, image builds, containers, and compose.

No Docker engine and no registry here (tests/containers/README.md): podman builds the Dockerfile
from a `debian:bookworm-slim` made from Debian's archive, and docker-compose 1.29 drives podman
through its Docker-compatible socket. Everything started here is stopped by its pid or name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests" / "containers"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/agenthub:test"
POSTGRES_IMAGE = "localhost/agenthub-test-postgres:15"
COMPOSE_VENV = Path(os.environ.get("AGENTHUB_COMPOSE_VENV", "/var/tmp/agenthub-compose"))
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_TIMEOUT_S = 900
WAIT_S = 90  # bound on a container or stack becoming ready


def unavailable(why: str) -> None:
    """Skip, or fail when the run requires the container tests (AGENTHUB_REQUIRE_CONTAINERS=1)."""
    if os.environ.get("AGENTHUB_REQUIRE_CONTAINERS") == "1":
        pytest.fail(f"the container tests cannot run: {why}")
    pytest.skip(f"container tests need rootful podman: {why}")


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout.strip()


def ensure_podman() -> None:
    """podman configured for this host (runc, cgroupfs) and the base image, made if missing."""
    if os.geteuid() != 0:
        unavailable("they run rootful podman, as root")
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            unavailable(f"`{tool}` is not installed (run tests/containers/setup.sh as root)")
    conf = Path("/etc/containers/containers.conf")
    if not conf.exists() or 'runtime = "runc"' not in conf.read_text():
        subprocess.run(["sh", str(SCRIPTS / "setup.sh")], check=True, timeout=600)
    if not _image_exists(BASE_IMAGE):
        subprocess.run(["sh", str(SCRIPTS / "base-image.sh")], check=True, timeout=600)


def _image_exists(ref: str) -> bool:
    return (
        subprocess.run(["podman", "image", "exists", ref], check=False, timeout=60).returncode == 0
    )


def build_args(tag: str, context: Path) -> list[str]:
    """`podman build` as the README documents it: local base only, Docker format (HEALTHCHECK)."""
    args = ["podman", "build", "--pull=never", "--format", "docker", "-t", tag]
    if CA_BUNDLE.exists():  # this machine's TLS-inspecting proxy; without it pip uses its own CAs
        args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    return [*args, str(context)]


def build(tag: str, context: Path) -> None:
    podman(*build_args(tag, context)[1:], timeout=BUILD_TIMEOUT_S)


class BackgroundBuild:
    """A build that runs while the test session does other work; `wait()` collects it."""

    def __init__(self, tag: str, context: Path, log: Path) -> None:
        self.tag, self.log = tag, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                build_args(tag, context), stdout=out, stderr=subprocess.STDOUT
            )

    def wait(self) -> str:
        try:
            code = self.proc.wait(BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"building {self.tag} took over {BUILD_TIMEOUT_S}s") from None
        assert code == 0, f"building {self.tag} failed:\n{self.log.read_text()[-3000:]}"
        return self.tag

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_ready(url: str, container: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=3).status_code == 200:
                return
        time.sleep(0.5)
    logs = podman("logs", container, check=False)
    raise AssertionError(f"{url} not 200 within {WAIT_S}s; {container} logged:\n{logs}")


class HealthPump:
    """Runs the HEALTHCHECKs of one compose project's containers every second.

    podman 4.3 runs health checks from systemd timers and no systemd runs here; without this,
    `depends_on: condition: service_healthy` never becomes true. Limited to the project's own
    containers (by compose label) so that nobody else's are touched.
    """

    def __init__(self, project: str) -> None:
        self.label = f"label=com.docker.compose.project={project}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stopping.wait(1):
            with contextlib.suppress(subprocess.SubprocessError, AssertionError):
                for cid in podman("ps", "-q", "--filter", self.label, check=False).split():
                    podman("healthcheck", "run", cid, check=False, timeout=30)

    def __enter__(self) -> HealthPump:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(60)


@contextlib.contextmanager
def podman_socket(tmp: Path) -> Iterator[str]:
    """podman's Docker-compatible API on a private socket; yields its DOCKER_HOST."""
    sock = tmp / "podman.sock"
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("podman system service did not open its socket")
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def ensure_compose() -> Path:
    """docker-compose 1.29 in its own venv (tests/containers/compose-venv.sh), made if missing."""
    exe = COMPOSE_VENV / "bin" / "docker-compose"
    if not exe.exists():
        done = subprocess.run(
            ["sh", str(SCRIPTS / "compose-venv.sh"), str(COMPOSE_VENV)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            unavailable(f"docker-compose 1.29 could not be installed:\n{done.stderr[-2000:]}")
    return exe
