"""Configuration: environment variables and `.env`, checked once at start-up.

A bad value stops `agenthub serve` and `agenthub migrate` with exit code 2 and one line per bad
variable, never a traceback. The database URL takes the plain forms every tool uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agenthub.config import ConfigError, Settings, load_settings
from tests.databases import fresh_pg_database, pg_reachable, query
from tests.support import free_port

# Every variable the server reads; bad-value lines are recognised by these names.
KNOWN = [
    "AGENTHUB_ENV",
    "AGENTHUB_DATA_DIR",
    "DATABASE_URL",
    "JWT_SECRET",
    "JWT_TTL_SECONDS",
    "JWT_PREVIOUS_SECRETS",
    "HOST",
    "PORT",
    "LOG_LEVEL",
    "ALLOWED_ORIGINS",
    "FEATURE_MESSAGING_ENABLED",
    "MAX_MESSAGE_BYTES",
    "MAX_BODY_BYTES",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
]
GOOD_SECRET = "s" * 40
# Like conftest's PostgreSQL runs: skipped only when unreachable, and with AGENTHUB_REQUIRE_PG=1
# (CI) an unreachable PostgreSQL stops the run before it gets here.
needs_pg = pytest.mark.skipif(not pg_reachable(), reason="PostgreSQL is not reachable")


def _is_config_var(name: str) -> bool:
    upper = name.upper()
    return upper in KNOWN or upper.startswith(("POSTGRES_", "AGENTHUB_", "JWT_"))


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without any AgentHub configuration, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not _is_config_var(k)}
    env.update(extra)
    return env


def agenthub(
    cwd: Path, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agenthub", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def config_lines(stderr: str) -> dict[str, str]:
    """The lines of a configuration error that name a variable, by variable."""
    found: dict[str, str] = {}
    for line in stderr.splitlines():
        name = line.strip().split(":", 1)[0]
        if name in KNOWN:
            assert name not in found, f"{name} reported twice:\n{stderr}"
            found[name] = line.strip()
    return found


def assert_config_error(result: subprocess.CompletedProcess[str], *bad: str) -> dict[str, str]:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = config_lines(result.stderr)
    assert set(lines) == set(bad), result.stderr
    return lines


BAD_VALUES: list[tuple[dict[str, str], list[str], str]] = [
    # (environment, variables that must be named, a word the explanation must contain)
    ({"PORT": "abc"}, ["PORT"], "1 to 65535"),
    ({"PORT": "70000"}, ["PORT"], "65535"),
    ({"AGENTHUB_ENV": "staging"}, ["AGENTHUB_ENV"], "production"),
    ({"LOG_LEVEL": "loud"}, ["LOG_LEVEL"], "debug"),
    ({"MAX_MESSAGE_BYTES": "0"}, ["MAX_MESSAGE_BYTES"], "bytes"),
    ({"DATABASE_URL": "mysql://x"}, ["DATABASE_URL"], "postgresql://"),
    ({"JWT_SECRET": "x" * 31}, ["JWT_SECRET"], "32 bytes"),
    ({"AGENTHUB_ENV": "production"}, ["JWT_SECRET"], "production"),
    ({"AGENTHUB_ENV": "production", "JWT_SECRET": ""}, ["JWT_SECRET"], "production"),
    ({"AGENTHUB_ENV": "production", "JWT_SECRET": "short"}, ["JWT_SECRET"], "32 bytes"),
    (
        {"JWT_PREVIOUS_SECRETS": "o" * 40 + ",short"},
        ["JWT_PREVIOUS_SECRETS"],
        "entry 2 is too short",
    ),
    (
        {"JWT_SECRET": "s" * 40, "JWT_PREVIOUS_SECRETS": "s" * 40},
        ["JWT_PREVIOUS_SECRETS"],
        "is the current JWT_SECRET",
    ),
    ({"POSTGRES_PORT": "five"}, ["POSTGRES_PORT"], "65535"),
    ({"FEATURE_MESSAGING_ENABLED": "maybe"}, ["FEATURE_MESSAGING_ENABLED"], "true"),
    ({"PORT": "abc", "LOG_LEVEL": "loud"}, ["PORT", "LOG_LEVEL"], ""),
    # a field error must not hide the production rule, nor the other way round
    ({"AGENTHUB_ENV": "production", "PORT": "abc"}, ["PORT", "JWT_SECRET"], ""),
    (
        {"DATABASE_URL": "mysql://x", "MAX_MESSAGE_BYTES": "-1", "JWT_SECRET": "tiny"},
        ["DATABASE_URL", "MAX_MESSAGE_BYTES", "JWT_SECRET"],
        "",
    ),
]


@pytest.mark.parametrize(
    ("values", "bad", "hint"),
    BAD_VALUES,
    ids=[",".join(f"{k}={v}" for k, v in values.items()) for values, _, _ in BAD_VALUES],
)
def test_serve_refuses_bad_configuration(
    tmp_path: Path, values: dict[str, str], bad: list[str], hint: str
) -> None:
    result = agenthub(tmp_path, clean_env(**values), "serve", "--port", str(free_port()))
    lines = assert_config_error(result, *bad)
    if hint:
        assert hint in lines[bad[0]], lines
    # nothing was started or created before the check
    assert not (tmp_path / "agenthub-data").exists()
    assert "listening" not in result.stderr


@pytest.mark.parametrize(
    "values",
    [
        {"PORT": "abc"},
        {"DATABASE_URL": "mysql://x"},
        {"AGENTHUB_ENV": "production"},
        {"LOG_LEVEL": "loud", "MAX_MESSAGE_BYTES": "0"},
    ],
    ids=lambda v: ",".join(v),
)
def test_migrate_refuses_bad_configuration(tmp_path: Path, values: dict[str, str]) -> None:
    bad = ["JWT_SECRET"] if values.get("AGENTHUB_ENV") == "production" else list(values)
    assert_config_error(agenthub(tmp_path, clean_env(**values), "migrate"), *bad)
    assert not (tmp_path / "agenthub-data").exists()


def test_secret_length_counts_bytes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    exactly_32 = agenthub(tmp_path, clean_env(DATABASE_URL=url, JWT_SECRET="k" * 32), "migrate")
    assert exactly_32.returncode == 0, exactly_32.stderr
    # 16 characters of two bytes each: long enough in bytes
    wide = agenthub(tmp_path, clean_env(DATABASE_URL=url, JWT_SECRET="é" * 16), "migrate")
    assert wide.returncode == 0, wide.stderr
    short = agenthub(tmp_path, clean_env(DATABASE_URL=url, JWT_SECRET="é" * 15), "migrate")
    assert "30 bytes" in assert_config_error(short, "JWT_SECRET")["JWT_SECRET"]


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=abc\n")
    result = agenthub(tmp_path, clean_env(), "serve")
    assert_config_error(result, "PORT")

    # .env and the environment are read together: a bad value in each, both reported
    result = agenthub(tmp_path, clean_env(LOG_LEVEL="loud"), "migrate")
    assert_config_error(result, "PORT", "LOG_LEVEL")


def test_dotenv_database_url_is_used_by_migrate(tmp_path: Path) -> None:
    db = tmp_path / "from-dotenv.db"
    (tmp_path / ".env").write_text(
        f"# AgentHub settings\nDATABASE_URL=sqlite:///{db}\nJWT_SECRET={GOOD_SECRET}\n"
    )
    result = agenthub(tmp_path, clean_env(), "migrate")
    assert result.returncode == 0, result.stderr
    assert "migrated" in result.stdout
    assert db.is_file()
    assert query(f"sqlite:///{db}", "SELECT count(*) FROM alembic_version") == [(1,)]
    assert not (tmp_path / "agenthub-data" / "agenthub.db").exists()


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv_db, env_db = tmp_path / "dotenv.db", tmp_path / "env.db"
    (tmp_path / ".env").write_text(f"DATABASE_URL=sqlite:///{dotenv_db}\nPORT=abc\n")
    result = agenthub(
        tmp_path, clean_env(DATABASE_URL=f"sqlite:///{env_db}", PORT="3001"), "migrate"
    )
    assert result.returncode == 0, result.stderr
    assert env_db.is_file()
    assert not dotenv_db.exists()


def test_plain_sqlite_url(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "plain.db"
    result = agenthub(
        tmp_path, clean_env(DATABASE_URL=f"sqlite:///{db}", JWT_SECRET=GOOD_SECRET), "migrate"
    )
    assert result.returncode == 0, result.stderr
    assert db.is_file()
    again = agenthub(
        tmp_path, clean_env(DATABASE_URL=f"sqlite:///{db}", JWT_SECRET=GOOD_SECRET), "migrate"
    )
    assert "up to date" in again.stdout


def test_relative_sqlite_url(tmp_path: Path) -> None:
    result = agenthub(
        tmp_path, clean_env(DATABASE_URL="sqlite:///rel/here.db", JWT_SECRET=GOOD_SECRET), "migrate"
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rel" / "here.db").is_file()


def _pg_parts(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    out = {
        "POSTGRES_HOST": parts.hostname or "localhost",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_DB": parts.path.lstrip("/"),
    }
    if parts.password:
        out["POSTGRES_PASSWORD"] = parts.password
    return out


def _pg_revision(url: str) -> list[tuple[object, ...]]:
    exists = query(url, "SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not exists[0][0]:
        return []
    return query(url, "SELECT version_num FROM alembic_version")


@needs_pg
def test_plain_postgresql_url(tmp_path: Path) -> None:
    with fresh_pg_database("cfg") as url:
        assert url.startswith("postgresql://")
        result = agenthub(tmp_path, clean_env(DATABASE_URL=url, JWT_SECRET=GOOD_SECRET), "migrate")
        assert result.returncode == 0, result.stderr
        assert len(_pg_revision(url)) == 1
    assert not (tmp_path / "agenthub-data" / "agenthub.db").exists()


@needs_pg
def test_postgresql_url_with_libpq_sslmode(tmp_path: Path) -> None:
    with fresh_pg_database("cfg") as url:
        env = clean_env(DATABASE_URL=f"{url}?sslmode=disable", JWT_SECRET=GOOD_SECRET)
        result = agenthub(tmp_path, env, "migrate")
        assert result.returncode == 0, result.stderr
        assert len(_pg_revision(url)) == 1


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@needs_pg
def test_missing_postgresql_database_is_one_clear_error(tmp_path: Path) -> None:
    with fresh_pg_database("cfg") as url:
        missing = url.rsplit("/", 1)[0] + "/agenthub_test_no_such_database"
        env = clean_env(DATABASE_URL=missing, JWT_SECRET=GOOD_SECRET)
        line = one_error(agenthub(tmp_path, env, "migrate"))
        assert "agenthub_test_no_such_database" in line
        assert "does not exist" in line


def test_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://hub:hunter2-secret@127.0.0.1:{free_port()}/hub"
    for args in (["migrate"], ["serve", "--port", str(free_port())]):
        result = agenthub(tmp_path, clean_env(DATABASE_URL=url, JWT_SECRET=GOOD_SECRET), *args)
        line = one_error(result)
        assert "database unavailable" in line
        assert "hunter2-secret" not in result.stdout + result.stderr


@needs_pg
def test_postgres_variables_select_postgresql(tmp_path: Path) -> None:
    with fresh_pg_database("cfg") as url:
        result = agenthub(tmp_path, clean_env(JWT_SECRET=GOOD_SECRET, **_pg_parts(url)), "migrate")
        assert result.returncode == 0, result.stderr
        assert "migrated" in result.stdout
        assert len(_pg_revision(url)) == 1
    assert not (tmp_path / "agenthub-data" / "agenthub.db").exists()


@needs_pg
def test_database_url_wins_over_postgres_variables(tmp_path: Path) -> None:
    db = tmp_path / "wins.db"
    with fresh_pg_database("cfg") as url:
        env = clean_env(DATABASE_URL=f"sqlite:///{db}", JWT_SECRET=GOOD_SECRET, **_pg_parts(url))
        result = agenthub(tmp_path, env, "migrate")
        assert result.returncode == 0, result.stderr
        assert db.is_file()
        assert _pg_revision(url) == []  # the PostgreSQL database was not touched


# --- load_settings in-process: URL mapping and messages ------------------------------------


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment and working directory (no .env) without any AgentHub variable."""
    for name in list(os.environ):
        if _is_config_var(name):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db.example:6543/hub", "postgresql+asyncpg://u:p@db.example:6543/hub"),
        ("postgres://u@h/hub", "postgresql+asyncpg://u@h/hub"),
        ("postgresql+asyncpg://u@h/hub", "postgresql+asyncpg://u@h/hub"),
        (
            "postgresql://u:p@h:5432/hub?sslmode=require",
            "postgresql+asyncpg://u:p@h:5432/hub?ssl=require",
        ),
        ("sqlite:////var/lib/agenthub/hub.db", "sqlite+aiosqlite:////var/lib/agenthub/hub.db"),
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_maps_to_async_driver(no_config: Path, url: str, expected: str) -> None:
    settings = load_settings(database_url=url)
    assert settings.database_url_async == expected
    assert settings.is_sqlite == url.startswith("sqlite")


def test_default_database_is_sqlite_in_the_data_folder(no_config: Path) -> None:
    settings = load_settings()
    expected = (no_config / "agenthub-data" / "agenthub.db").resolve()
    assert settings.database_url_async == f"sqlite+aiosqlite:///{expected}"
    assert settings.port == 3000
    assert settings.host == "127.0.0.1"
    assert settings.max_message_bytes == 65536
    assert settings.agenthub_env == "development"


def test_postgres_variables_build_the_url(no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PORT", "6432")
    monkeypatch.setenv("POSTGRES_USER", "hub")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss:w/rd")
    monkeypatch.setenv("POSTGRES_DB", "agenthub")
    settings = load_settings()
    assert settings.database_url_async == (
        "postgresql+asyncpg://hub:p%40ss%3Aw%2Frd@db.internal:6432/agenthub"
    )
    monkeypatch.setenv("DATABASE_URL", "sqlite:///won.db")
    assert load_settings().database_url_async == "sqlite+aiosqlite:///won.db"


def test_environment_variables_are_read(no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("LOG_LEVEL", "WARN")
    monkeypatch.setenv("ALLOWED_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("FEATURE_MESSAGING_ENABLED", "false")
    monkeypatch.setenv("MAX_MESSAGE_BYTES", "1024")
    monkeypatch.setenv("AGENTHUB_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    settings = load_settings()
    assert settings.port == 8123
    assert settings.log_level == "warning"
    assert settings.allowed_origins == ["http://a.example", "http://b.example"]
    assert settings.feature_messaging_enabled is False
    assert settings.max_message_bytes == 1024
    assert settings.is_production
    assert settings.secret() == GOOD_SECRET


def test_config_error_has_one_line_per_variable(
    no_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "abc")
    monkeypatch.setenv("AGENTHUB_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", "mysql://root@db/x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    names = sorted(line.split(":", 1)[0] for line in caught.value.lines)
    assert names == ["DATABASE_URL", "JWT_SECRET", "PORT"]
    for line in caught.value.lines:
        assert "\n" not in line
        assert "expected" in line
        assert "mysql://root@db/x" not in line  # values are not echoed (they may be secrets)


def test_development_secret_is_generated_once(no_config: Path) -> None:
    settings = load_settings(agenthub_data_dir=no_config / "data")
    assert isinstance(settings, Settings)
    first = settings.secret()
    path = no_config / "data" / "jwt-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(first.encode()) >= 32
    assert load_settings(agenthub_data_dir=no_config / "data").secret() == first


def test_several_node_settings_are_read_and_bad_ones_named(
    no_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REDIS_KEY_PREFIX", "hub-1:prod")
    monkeypatch.setenv("REDIS_STREAM_MAXLEN", "5000")
    monkeypatch.setenv("REDIS_RESYNC_SECONDS", "2.5")
    settings = load_settings()
    assert settings.redis_key_prefix == "hub-1:prod"
    assert settings.redis_stream_maxlen == 5000
    assert settings.redis_resync_seconds == 2.5
    assert load_settings(redis_url=None).redis_key_prefix == "hub-1:prod"

    monkeypatch.setenv("REDIS_KEY_PREFIX", "two words")
    monkeypatch.setenv("REDIS_STREAM_MAXLEN", "0")
    monkeypatch.setenv("REDIS_RESYNC_SECONDS", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    names = sorted(line.split(":", 1)[0] for line in caught.value.lines)
    assert names == ["REDIS_KEY_PREFIX", "REDIS_RESYNC_SECONDS", "REDIS_STREAM_MAXLEN"]
    for line in caught.value.lines:
        assert "expected" in line
        assert "two words" not in line
