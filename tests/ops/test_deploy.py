"""The deployment files, checked without containers: the lock, the compose files, the systemd unit,
and the development server's `--reload`."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from agenthub.http.origins import origin_allowed, parse_origins
from agenthub.http.proxies import parse_trusted_proxies
from tests.ops import podman as pm
from tests.support import base_env, free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("AGENTHUB_REQUIRE_CONTAINERS") == "1"


def missing(tool: str) -> None:
    if REQUIRE:
        pytest.fail(f"`{tool}` is required (AGENTHUB_REQUIRE_CONTAINERS=1) but not installed")
    pytest.skip(f"`{tool}` is not installed")


# ---- requirements.lock ----


def parse_lock(text: str) -> tuple[dict[str, Version], dict[str, set[str]], dict[str, int]]:
    """pins (name -> version), via (name -> what requires it), hashes (name -> count)."""
    pins: dict[str, Version] = {}
    via: dict[str, set[str]] = defaultdict(set)
    hashes: dict[str, int] = defaultdict(int)
    current = ""
    for line in text.splitlines():
        entry = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line)
        if entry:
            current = canonicalize_name(entry[1])
            assert current not in pins, f"{current} pinned twice"
            pins[current] = Version(entry[2])
            continue
        assert not line or line.startswith((" ", "#")), f"unpinned line in the lock: {line!r}"
        if "--hash=sha256:" in line:
            hashes[current] += 1
        annotation = re.match(r"^\s+#\s+(?:via\s+)?([^ ].*)$", line)
        if annotation and annotation[1] != "via":
            via[current].add(annotation[1].strip())
    return pins, via, hashes


def check_lock(pyproject: dict[str, object], lock: str) -> list[str]:
    """What keeps `lock` from pinning exactly pyproject's runtime and build dependencies."""
    project = pyproject["project"]
    groups = pyproject["dependency-groups"]
    assert isinstance(project, dict)
    assert isinstance(groups, dict)
    roots = {
        "agenthub (pyproject.toml)": [Requirement(r) for r in project["dependencies"]],
        "agenthub (pyproject.toml:build)": [Requirement(r) for r in groups["build"]],
    }
    pins, via, hashes = parse_lock(lock)
    problems = []
    for root, requirements in roots.items():
        wanted = {canonicalize_name(r.name) for r in requirements}
        locked = {name for name, parents in via.items() if root in parents}
        problems += [
            f"{n}: in pyproject, not locked as a direct dependency" for n in wanted - locked
        ]
        problems += [f"{n}: locked via {root}, no longer in pyproject" for n in locked - wanted]
        for r in requirements:
            name = canonicalize_name(r.name)
            if name in pins and not r.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{name}=={pins[name]} does not satisfy pyproject's {r}")
    for name in pins:
        if hashes[name] == 0:
            problems.append(f"{name}: no hash")
        for parent in via[name] - set(roots):
            if canonicalize_name(parent) not in pins:
                problems.append(f"{name}: required by {parent}, which is not locked")
        if not via[name]:
            problems.append(f"{name}: nothing requires it")
    return problems


def test_lock_pins_exactly_pyprojects_dependencies_with_hashes() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = (ROOT / "requirements.lock").read_text()
    assert check_lock(pyproject, lock) == []
    # The checker itself notices a dependency added to pyproject but not locked, one removed
    # from pyproject but still locked, and a pin outside pyproject's range.
    project = pyproject["project"]
    deps = list(project["dependencies"])
    added = {**pyproject, "project": {**project, "dependencies": [*deps, "left-pad>=1"]}}
    assert check_lock(added, lock) == ["left-pad: in pyproject, not locked as a direct dependency"]
    removed = {**pyproject, "project": {**project, "dependencies": deps[1:]}}
    dropped = canonicalize_name(Requirement(deps[0]).name)
    assert f"{dropped}: locked via agenthub (pyproject.toml), no longer in pyproject" in check_lock(
        removed, lock
    )
    narrowed = {**pyproject, "project": {**project, "dependencies": [*deps, "fastapi<0.1"]}}
    assert any("does not satisfy pyproject's fastapi<0.1" in p for p in check_lock(narrowed, lock))


def test_image_installs_only_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r /tmp/requirements.lock" in dockerfile
    assert "--no-deps --no-build-isolation --no-index /src" in dockerfile
    assert "pip check" in dockerfile
    # .dockerignore is an allow-list: everything is out (.env, .venv, data, .git) but the sources.
    rules = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln[:1] not in "#"]
    assert rules[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in rules if ln.startswith("!")}
    assert allowed == {"Dockerfile", "requirements.lock", "pyproject.toml", "README.md", "agenthub"}


# ---- compose files ----

COMPOSE_FILES = [
    "compose.lan.yml",
    "compose.dev.yml",
    "compose.scale.yml",
    "tests/containers/compose.test.yml",
]


def validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(exe), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_follows_the_compose_specification(name: str, tmp_path: Path) -> None:
    done = validate_compose(ROOT / name)
    assert done.returncode == 0, done.stdout + done.stderr
    # …and the validator does refuse a broken file: a key the specification does not know.
    broken = tmp_path / "broken.yml"
    text = (ROOT / name).read_text()
    broken.write_text(text.replace("image:", "imag3:", 1))
    assert validate_compose(broken).returncode != 0


def test_lan_stack_listens_on_the_lan_with_secrets_from_env() -> None:
    lan = yaml.safe_load((ROOT / "compose.lan.yml").read_text())
    app, db = lan["services"]["agenthub"], lan["services"]["postgres"]
    assert db["image"] == "postgres:16"
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "healthcheck" in app
    assert "healthcheck" in db
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert db["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert "pgdata" in lan["volumes"]
    env = app["environment"]
    assert env["HOST"] == "0.0.0.0"  # noqa: S104 (the point: the LAN reaches it)
    assert env["AGENTHUB_ENV"] == "production"
    for secret in ("JWT_SECRET", "POSTGRES_PASSWORD"):  # from .env, refused when empty
        assert env[secret].startswith("${" + secret + ":?"), env[secret]
    assert db["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    default_origins = env["ALLOWED_ORIGINS"].removeprefix("${ALLOWED_ORIGINS:-").rstrip("}")
    rules = parse_origins(default_origins.split(","))
    assert origin_allowed(rules, "http://192.168.1.23:3000")
    assert not origin_allowed(rules, "http://10.0.0.5:3000")
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example["JWT_SECRET"] == ""  # no usable default secret ships
    assert example["POSTGRES_PASSWORD"] == ""
    parse_origins(example["ALLOWED_ORIGINS"].split(","))


def test_scale_stack_puts_nginx_before_nodes_that_share_everything() -> None:
    """compose.scale.yml: the nodes differ only in their volumes and start order; nginx, the only
    published service, balances over exactly the nodes, with deploy/nginx/agenthub.conf, from
    the one address the nodes trust for X-Forwarded-For."""
    scale = yaml.safe_load((ROOT / "compose.scale.yml").read_text())
    services = scale["services"]
    nodes = sorted(name for name in services if name.startswith("agenthub-"))
    assert nodes == ["agenthub-1", "agenthub-2"]
    first, second = (services[n] for n in nodes)
    assert first["environment"] == second["environment"]  # one JWT_SECRET, one Redis, one DB
    env = first["environment"]
    for secret in ("JWT_SECRET", "POSTGRES_PASSWORD"):
        assert env[secret].startswith("${" + secret + ":?"), env[secret]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["POSTGRES_HOST"] == "postgres"
    assert env["AGENTHUB_ENV"] == "production"
    for node in (first, second):
        assert "ports" not in node  # reached through nginx only
        assert "/readyz" in " ".join(node["healthcheck"]["test"])
    assert first["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    # One node migrates an empty database and creates the admin before the other starts.
    assert second["depends_on"] == {"agenthub-1": {"condition": "service_healthy"}}
    assert first["volumes"] != second["volumes"]
    published = sorted(name for name, svc in services.items() if "ports" in svc)
    assert published == ["nginx"]
    lb = services["nginx"]
    assert "./deploy/nginx/agenthub.conf:/etc/nginx/conf.d/default.conf:ro" in lb["volumes"]
    assert lb["depends_on"] == {n: {"condition": "service_healthy"} for n in nodes}
    # The nodes trust exactly nginx's fixed address, inside the network's subnet.
    address = lb["networks"]["default"]["ipv4_address"]
    assert parse_trusted_proxies(env["TRUSTED_PROXIES"].split(",")) == [address]
    subnet = scale["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    # nginx's upstream block names exactly these nodes, on the port they listen on.
    conf = (ROOT / "deploy" / "nginx" / "agenthub.conf").read_text()
    upstreams = re.findall(r"^\s*server (\S+?)(?: [^;]*)?;$", conf, re.MULTILINE)
    assert upstreams == [f"{n}:{env['PORT']}" for n in nodes]


def test_scale_stack_passes_docker_compose_config(tmp_path: Path) -> None:
    """docker-compose itself reads compose.scale.yml (merge keys, variables, the network)."""
    exe = pm.ensure_compose()  # skipped when it cannot be installed, failed when required
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": "p" * 32,
        "JWT_SECRET": "j" * 32,
    }

    def config(*extra: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(exe), "-f", str(ROOT / "compose.scale.yml"), "--project-directory",
             str(tmp_path), "config", *extra],
            capture_output=True, text=True, timeout=120, check=False, env=environ,
        )  # fmt: skip

    done = config(environ=env)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    nodes = [resolved["services"][n] for n in ("agenthub-1", "agenthub-2")]
    assert nodes[0]["environment"] == nodes[1]["environment"]
    assert nodes[0]["environment"]["JWT_SECRET"] == "j" * 32
    # …and it refuses to go on without the secrets.
    refused = config("--quiet", environ={k: v for k, v in env.items() if k != "JWT_SECRET"})
    assert refused.returncode != 0
    assert "set JWT_SECRET in .env" in refused.stderr


# ---- systemd ----


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing("systemd-analyze")
    unit = (ROOT / "deploy" / "agenthub.service").read_text()
    for option in (
        "User=agenthub",
        "EnvironmentFile=/etc/agenthub/agenthub.env",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/agenthub",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
    ):
        assert option in unit, option
    # verify needs ExecStart's program to exist: point it at this checkout's agenthub.
    agenthub = Path(sys.executable).parent / "agenthub"
    assert "ExecStart=/opt/agenthub/bin/agenthub serve" in unit
    copy = tmp_path / "agenthub.service"
    copy.write_text(unit.replace("/opt/agenthub/bin/agenthub", str(agenthub)))
    done = subprocess.run(
        [str(analyze), "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    # Unknown keys or misplaced options are only warnings: any line naming the unit fails too.
    complaints = [ln for ln in (done.stdout + done.stderr).splitlines() if "agenthub" in ln]
    assert done.returncode == 0, done.stderr
    assert complaints == []
    # …and verify does complain about a misplaced option, so that check can fail.
    copy.write_text(copy.read_text().replace("[Install]", "[Install]\nProtectSystem=strict"))
    done = subprocess.run(
        [str(analyze), "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "agenthub.service" in done.stdout + done.stderr


# ---- agenthub serve --reload ----


def test_serve_reload_restarts_on_a_source_change_and_is_refused_in_production(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = base_env(f"sqlite:///{tmp_path / 'agenthub.db'}", tmp_path, AGENTHUB_ENV="development")
    cmd = [sys.executable, "-m", "agenthub", "serve", "--reload", "--port", str(port)]
    refused = subprocess.run(
        cmd,
        env={**env, "AGENTHUB_ENV": "production"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "--reload is for development" in refused.stderr

    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        uptime_when_up(port, proc)
        time.sleep(2)  # not an assertion: lets the uptime grow well past a fresh start's
        before = uptime_when_up(port, proc)
        # A source file of the package changes (same content, new mtime): the app restarts,
        # so its uptime starts again from zero; without a restart it only grows.
        os.utime(Path(sys.modules["agenthub"].__file__ or ""))
        deadline = time.monotonic() + 60
        while uptime_when_up(port, proc) >= before:
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop_process(proc)
        log.close()


def uptime_when_up(port: int, proc: subprocess.Popen[bytes]) -> float:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the reloading server exited"
        try:
            return float(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["uptime"])
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("the reloading server did not answer within 60 s")
