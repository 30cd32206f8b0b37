"""The console's shipped files: the vendored socket.io-client bundle is byte for byte the npm
package's file of the pinned version, with its license; no file is fetched from elsewhere;
and `own_origin`, which decides what "the hub's own origin" is."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from agenthub.http.origins import own_origin, same_origin

ROOT = Path(__file__).parent.parent.parent
STATIC = ROOT / "agenthub" / "console" / "static"
JS = ROOT / "tests" / "js"
NPM_BUNDLE = JS / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
# The bundle's digest, as vendored from socket.io-client 4.8.4's dist/socket.io.min.js.
VENDORED_SHA256 = "d5d79a35039e860b32bdef4795528b05c2f788d4b2d9dacc913120e2878f7b3f"


def pinned_version() -> str:
    spec = json.loads((JS / "package.json").read_text())["dependencies"]["socket.io-client"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", spec), f"socket.io-client must be pinned, not {spec!r}"
    return str(spec)


def test_the_vendored_bundle_is_the_one_recorded() -> None:
    digest = hashlib.sha256((STATIC / "socket.io.min.js").read_bytes()).hexdigest()
    assert digest == VENDORED_SHA256
    assert pinned_version() == "4.8.4"
    license_text = (STATIC / "socket.io-client.LICENSE").read_text()
    assert "MIT" in license_text or "Permission is hereby granted" in license_text


def test_the_vendored_bundle_is_the_npm_packages_file() -> None:
    if not NPM_BUNDLE.is_file():
        why = "tests/js/node_modules is missing (make js-deps)"
        if os.environ.get("AGENTHUB_REQUIRE_NODE") == "1":
            pytest.fail(why)
        pytest.skip(why)
    installed = json.loads((NPM_BUNDLE.parent.parent / "package.json").read_text())["version"]
    assert installed == pinned_version()
    assert (STATIC / "socket.io.min.js").read_bytes() == NPM_BUNDLE.read_bytes()
    npm_license = (NPM_BUNDLE.parent.parent / "LICENSE").read_bytes()
    assert (STATIC / "socket.io-client.LICENSE").read_bytes() == npm_license


def test_no_shipped_file_loads_anything_from_elsewhere() -> None:
    for path in STATIC.iterdir():
        if path.suffix not in (".js", ".css", ".svg") or path.name == "socket.io.min.js":
            continue
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name
        assert "innerHTML" not in text, path.name
        assert "insertAdjacentHTML" not in text, path.name
        assert "eval(" not in text, path.name


@pytest.mark.parametrize(
    ("scheme", "host", "origin"),
    [
        ("http", "127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http", "hub.lan", "http://hub.lan"),
        ("http", "hub.lan:80", "http://hub.lan"),
        ("https", "hub.example:443", "https://hub.example"),
        ("https", "HUB.example:8443", "https://hub.example:8443"),
        ("ws", "10.0.0.5:3000", "http://10.0.0.5:3000"),
        ("wss", "hub.example", "https://hub.example"),
        ("http", "[::1]:3000", "http://::1:3000"),
        ("http", "", None),
        ("http", "evil.example/path", None),
        ("ftp", "hub.lan", None),
    ],
)
def test_own_origin(scheme: str, host: str, origin: str | None) -> None:
    scope = {"scheme": scheme, "headers": [(b"host", host.encode())] if host else []}
    assert own_origin(scope) == origin


def test_same_origin_needs_the_exact_scheme_host_and_port() -> None:
    scope = {"scheme": "http", "headers": [(b"host", b"hub.lan:3000")]}
    assert same_origin(scope, "http://hub.lan:3000")
    assert same_origin(scope, "http://HUB.lan:3000")
    assert not same_origin(scope, "https://hub.lan:3000")
    assert not same_origin(scope, "http://hub.lan:3001")
    assert not same_origin(scope, "http://hub.lan")
    assert not same_origin(scope, None)
    assert not same_origin(scope, "null")
    assert not same_origin(scope, "http://hub.lan:3000/path")
    v6 = {"scheme": "http", "headers": [(b"host", b"[::1]:3000")]}
    assert same_origin(v6, "http://[::1]:3000")
    tls = {"scheme": "https", "headers": [(b"host", b"hub.example")]}
    assert same_origin(tls, "https://hub.example:443")
