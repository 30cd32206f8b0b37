"""The harness itself (tests/support.py): what the other tests rely on must hold, or their
results mean nothing. One SQLite server each: nothing here is about storage."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.faults import restart_server
from tests.support import (
    PortTaken,
    jwt_claims,
    spawn_server,
    start_server,
    stop_process,
    wait_ready,
)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agenthub.db'}"


def test_a_port_taken_before_the_server_binds_it_is_detected_not_mistaken(
    tmp_path: Path,
) -> None:
    """A server that cannot bind its port is told apart from whatever holds the port, and
    start_server picks another one."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        srv = start_server("sqlite", sqlite_url(tmp_path), tmp_path / "data")
        try:
            env = {**srv.env}
            log_path = tmp_path / "taken.log"
            proc = spawn_server(env, port, log_path)
            try:
                with pytest.raises(PortTaken):
                    wait_ready(f"http://127.0.0.1:{port}", proc, log_path)
            finally:
                stop_process(proc)
            # Another AgentHub answering /readyz on the port is not taken for the new one.
            other = int(srv.base_url.rsplit(":", 1)[1])
            proc = spawn_server(env, other, tmp_path / "second.log")
            try:
                with pytest.raises(PortTaken):
                    wait_ready(srv.base_url, proc, tmp_path / "second.log")
            finally:
                stop_process(proc)
        finally:
            srv.api.close()
            stop_process(srv.proc)


def test_the_admin_jwt_is_renewed_before_it_expires_and_after_a_refusal(tmp_path: Path) -> None:
    srv = start_server("sqlite", sqlite_url(tmp_path), tmp_path / "data", JWT_TTL_SECONDS="2")
    try:
        first = srv.admin.jwt
        deadline = jwt_claims(first)["exp"]
        while time.time() <= deadline + 1:  # bounded: the JWT lives 2 s
            time.sleep(0.2)
        assert (
            srv.api.http.get(
                "/api/v1/agents/me", headers={"Authorization": f"Bearer {first}"}
            ).status_code
            == 401
        )  # it has expired...
        assert srv.admin.get("/api/v1/agents/me").status_code == 200  # ...the admin's has not
        assert srv.admin.jwt != first
        # A JWT far from its expiry, refused after a restart with another key: renewed on the
        # 401, and the request is answered.
        restart_server(srv, JWT_SECRET="another-secret-" + "y" * 40, JWT_TTL_SECONDS="900")
        alice = srv.new_agent()
        held = srv.admin.jwt
        restart_server(srv, JWT_SECRET="a-third-secret-" + "z" * 40)
        assert srv.admin.jwt == held  # not due for renewal...
        assert srv.admin.get("/api/v1/agents/me").status_code == 200  # ...yet answered
        assert srv.admin.jwt != held
        # Agents made by tests keep the JWT they were given (their refusals are the point).
        assert alice.get("/api/v1/agents/me").status_code == 401
    finally:
        srv.api.close()
        stop_process(srv.proc)


def test_log_text_since_a_mark_reads_only_what_came_after(tmp_path: Path) -> None:
    srv = start_server("sqlite", sqlite_url(tmp_path), tmp_path / "data", LOG_LEVEL="info")
    try:

        def logged(request_id: str) -> None:
            srv.log_text_with(request_id)

        srv.api.http.get("/api/v1/agents/me", headers={"X-Request-ID": "before-the-mark"})
        logged("before-the-mark")
        mark = srv.log_mark()
        srv.api.http.get("/api/v1/agents/me", headers={"X-Request-ID": "after-the-mark"})
        restart_server(srv)  # the log of the new process counts too
        srv.api.http.get("/api/v1/agents/me", headers={"X-Request-ID": "after-the-restart"})
        logged("after-the-restart")
        since = srv.log_text(since=mark)
        assert "before-the-mark" not in since
        assert "after-the-mark" in since
        assert "after-the-restart" in since
        assert "before-the-mark" in srv.log_text()
    finally:
        srv.api.close()
        stop_process(srv.proc)
