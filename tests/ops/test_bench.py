"""`make bench` in a clone: the seed's Node server is not in the repository, so without
AGENTHUB_NODE_REF the matrix runs AgentHub's own rows and says so (no path outside the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import matrix, report


def test_without_a_peer_the_matrix_runs_agenthub_rows_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(matrix.NODE_REF_VAR, raising=False)
    targets, said = matrix.choose_targets(None)
    assert targets == ["AgentHub (PostgreSQL)", "AgentHub (SQLite)"]
    assert said is not None
    assert "node-ref not found" in said
    assert "AgentHub's own rows" in said


def test_a_peer_named_by_the_environment_is_compared(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "package.json").write_text("{}")
    monkeypatch.setenv(matrix.NODE_REF_VAR, str(tmp_path))
    assert matrix.choose_targets(None) == (list(matrix.TARGETS), None)


def test_asking_for_an_absent_peer_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(matrix.NODE_REF_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match="AGENTHUB_NODE_REF"):
        matrix.choose_targets("node-ref,pg")
    assert matrix.choose_targets("pg,sqlite") == (list(matrix.TARGETS[1:]), None)


def test_the_report_says_when_node_ref_did_not_run() -> None:
    row = {"throughput": 100.0, "complete": True}
    alone = report.markdown({}, {"saturation": {report.PG: row}}, [], "make bench", 60)
    assert "was not present" in alone
    assert "../shared" not in alone
    both = {"saturation": {report.PG: row, report.NODE: row}}
    assert "was not present" not in report.markdown({}, both, [], "make bench", 60)
