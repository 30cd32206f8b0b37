"""Settings, validated once at start-up.

Every variable of the seed is read here, plus the ones AgentHub adds. A bad value stops start-up
with one line per variable (see `ConfigError`), never a traceback.
"""

from __future__ import annotations

import logging
import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, urlencode

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from agenthub.http.origins import parse_origins
from agenthub.http.proxies import parse_trusted_proxies

log = logging.getLogger("agenthub.config")

JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 (a file name, not a secret)
MIN_SECRET_BYTES = 32


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


LOG_LEVELS = {"debug", "info", "warning", "warn", "error", "critical"}

# What each variable should look like, for the start-up error message.
EXPECTED: dict[str, str] = {
    "AGENTHUB_ENV": "one of development, test, production",
    "JWT_SECRET": f"a random string of at least {MIN_SECRET_BYTES} bytes "
    "(e.g. `openssl rand -base64 32`)",
    "JWT_PREVIOUS_SECRETS": "comma-separated earlier values of JWT_SECRET, each of at least "
    f"{MIN_SECRET_BYTES} bytes and none equal to JWT_SECRET",
    "JWT_TTL_SECONDS": "a whole number of seconds from 1 to 86400",
    "DATABASE_URL": "postgresql://user:pass@host:port/db or sqlite:///path/to/file.db",
    "POSTGRES_PORT": "a port number from 1 to 65535",
    "PORT": "a port number from 1 to 65535",
    "HOST": "an address to bind, e.g. 127.0.0.1 or 0.0.0.0",
    "LOG_LEVEL": "one of debug, info, warning, error, critical",
    "ALLOWED_ORIGINS": "comma-separated origins like http://localhost:3000 "
    "or IPv4 CIDR entries like http://192.168.1.0/24",
    "RATE_LIMIT_UNAUTH_PER_MIN": "a whole number of requests, at least 1",
    "RATE_LIMIT_AUTH_PER_MIN": "a whole number of requests, at least 1",
    "REDIS_URL": "redis://host:port/db",
    "REDIS_KEY_PREFIX": "1-64 characters among letters, digits, '-', '_', ':' and '.'",
    "REDIS_STREAM_MAXLEN": "a whole number of entries, at least 1",
    "REDIS_RESYNC_SECONDS": "a number of seconds above 0",
    "HSTS_MAX_AGE": "a whole number of seconds (0 turns the header off)",
    "LOG_FORMAT": "auto, json or text",
    "METRICS_REFRESH_SECONDS": "a number of seconds above 0",
    "FEATURE_MESSAGING_ENABLED": "true or false",
    "MAX_MESSAGE_BYTES": "a whole number of bytes from 1 to 1048576",
    "AGENTHUB_DATA_DIR": "a writable directory path",
    "RATE_LIMIT_SOCKET_PER_SEC": "a whole number of events, at least 1",
    "PRESENCE_TTL_SECONDS": "a number of seconds above 0",
    "PRESENCE_SWEEP_SECONDS": "a number of seconds above 0",
    "SOCKETIO_PING_INTERVAL": "a number of seconds above 0",
    "SOCKETIO_PING_TIMEOUT": "a number of seconds above 0",
    "SOCKET_AUTH_DEADLINE_SECONDS": "a number of seconds above 0",
    "MAX_UNAUTHENTICATED_PER_IP": "a whole number of sessions, at least 1",
    "TRUSTED_PROXIES": "comma-separated proxy addresses or CIDR networks like 10.0.0.0/8",
}


class ConfigError(Exception):
    """Start-up configuration is invalid; `lines` holds one sentence per bad variable."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    agenthub_env: Environment = Environment.development
    agenthub_data_dir: Path = Path("agenthub-data")

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: str = "info"

    # Validated even when unset: production requires it (see `_jwt_secret`).
    jwt_secret: str | None = Field(default=None, validate_default=True)
    # Earlier signing keys that still verify during a rotation (auth/jwt.py, docs/RUNBOOK.md).
    jwt_previous_secrets: Annotated[list[str], NoDecode] = []
    jwt_ttl_seconds: int = Field(default=900, ge=1, le=86400)

    database_url: str | None = None
    postgres_host: str | None = None
    postgres_port: int | None = Field(default=None, ge=1, le=65535)
    postgres_user: str | None = None
    postgres_password: str | None = None
    postgres_db: str | None = None

    allowed_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    # Peers whose X-Forwarded-For names the client (see http/proxies.py); none by default.
    trusted_proxies: Annotated[list[str], NoDecode] = []
    feature_messaging_enabled: bool = True
    max_message_bytes: int = Field(default=65536, ge=1, le=1024 * 1024)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    rate_limit_socket_per_sec: int = Field(default=30, ge=1)
    presence_ttl_seconds: float = Field(default=30.0, gt=0)
    presence_sweep_seconds: float = Field(default=5.0, gt=0)
    socketio_ping_interval: float = Field(default=25.0, gt=0)
    socketio_ping_timeout: float = Field(default=20.0, gt=0)
    # Engine.IO sessions not yet connected to /agents with a valid token (realtime/admission.py).
    socket_auth_deadline_seconds: float = Field(default=10.0, gt=0)
    max_unauthenticated_per_ip: int = Field(default=100, ge=1)

    rate_limit_unauth_per_min: int = Field(default=100, ge=1)
    rate_limit_auth_per_min: int = Field(default=600, ge=1)
    redis_url: str | None = None
    # Several nodes (realtime/cluster.py): every node of one hub uses the same prefix.
    redis_key_prefix: str = Field(default="agenthub", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    redis_stream_maxlen: int = Field(default=100_000, ge=1)
    redis_resync_seconds: float = Field(default=5.0, gt=0)
    hsts_max_age: int = Field(default=0, ge=0)
    log_format: Literal["auto", "json", "text"] = "auto"
    metrics_refresh_seconds: float = Field(default=30.0, gt=0)

    @field_validator("allowed_origins")
    @classmethod
    def _origin_rules(cls, v: list[str]) -> list[str]:
        parse_origins(v)  # raises with a sentence naming the bad entry
        return v

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        return parse_trusted_proxies(v)  # raises with a sentence naming the bad entry

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("unsupported Redis URL")
        return v.strip()

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (self.log_format == "auto" and self.is_production)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in LOG_LEVELS:
            raise ValueError("unknown log level")
        return "warning" if v == "warn" else v

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if scheme.split("+", 1)[0] not in {"postgresql", "postgres", "sqlite"}:
            raise ValueError("unsupported database URL")
        return v

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret(cls, v: str | None, info: ValidationInfo) -> str | None:
        # A field validator, not a model one, so that it is reported together with the other
        # variables' errors (model validators do not run once a field has failed).
        # `agenthub_env` is declared earlier, so it is in `info.data` when it was valid.
        if v is not None and not v.strip():
            v = None  # JWT_SECRET= (empty) means unset
        if v is None:
            if info.data.get("agenthub_env") is Environment.production:
                raise ValueError("required in production")
            return None
        if len(v.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"too short ({len(v.encode())} bytes)")
        return v

    @field_validator("jwt_previous_secrets", mode="before")
    @classmethod
    def _previous_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("jwt_previous_secrets")
    @classmethod
    def _previous_secrets(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for i, secret in enumerate(v, start=1):
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"entry {i} is too short ({len(secret.encode())} bytes)")
            if secret == info.data.get("jwt_secret"):
                raise ValueError(f"entry {i} is the current JWT_SECRET")
        return v

    @property
    def is_production(self) -> bool:
        return self.agenthub_env is Environment.production

    @property
    def uses_postgres_vars(self) -> bool:
        return any(
            v is not None
            for v in (
                self.postgres_host,
                self.postgres_port,
                self.postgres_user,
                self.postgres_password,
                self.postgres_db,
            )
        )

    @property
    def database_url_async(self) -> str:
        """The SQLAlchemy URL with the async driver chosen for the backend."""
        return async_url(self.resolved_database_url)

    @property
    def resolved_database_url(self) -> str:
        """DATABASE_URL, else the POSTGRES_* variables, else SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        if self.uses_postgres_vars:
            user = quote(self.postgres_user or "agenthub", safe="")
            password = self.postgres_password
            auth = f"{user}:{quote(password, safe='')}" if password else user
            host = self.postgres_host or "localhost"
            port = self.postgres_port or 5432
            return f"postgresql://{auth}@{host}:{port}/{self.postgres_db or 'agenthub'}"
        return f"sqlite:///{(self.agenthub_data_dir / 'agenthub.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def database_summary(self) -> str:
        """Which database, and which setting chose it, for the start-up banner (no password)."""
        url = make_url(self.resolved_database_url)
        if self.is_sqlite:
            what = f"SQLite {url.database}"
        else:
            what = f"PostgreSQL {url.host or 'localhost'}:{url.port or 5432}/{url.database}"
        if self.database_url:
            source = "DATABASE_URL"
        elif self.uses_postgres_vars:
            fields = ("host", "port", "user", "password", "db")
            names = [f"POSTGRES_{f.upper()}" for f in fields if getattr(self, f"postgres_{f}")]
            source = ", ".join(names)
        else:
            source = "the default: no DATABASE_URL or POSTGRES_* set"
        return f"{what} (from {source})"

    def startup_warnings(self) -> list[str]:
        """Settings that start but deserve a sentence: one line each."""
        warnings = []
        if self.is_production and self.is_sqlite:
            # Allowed (a small LAN hub runs well on one file), but never by accident.
            warnings.append(
                "AGENTHUB_ENV=production on SQLite: one process on one file, no several nodes; "
                "set DATABASE_URL or POSTGRES_HOST for PostgreSQL unless this is what you want"
            )
        return warnings

    def secret(self) -> str:
        """The HS256 key: JWT_SECRET, else one generated once and kept in the data folder."""
        if self.jwt_secret:
            return self.jwt_secret
        return _dev_secret(self.agenthub_data_dir)


def async_url(url: str) -> str:
    """Map the plain URL forms every tool uses onto SQLAlchemy's async drivers."""
    scheme, rest = url.split("://", 1)
    base = scheme.split("+", 1)[0]
    if base in {"postgresql", "postgres"}:
        # libpq's `sslmode=require` is asyncpg's `ssl=require` (same mode names).
        head, sep, query = rest.partition("?")
        if sep:
            params = [("ssl" if k == "sslmode" else k, v) for k, v in parse_qsl(query)]
            rest = f"{head}?{urlencode(params)}"
        return f"postgresql+asyncpg://{rest}"
    return f"sqlite+aiosqlite://{rest}"


def _dev_secret(data_dir: Path) -> str:
    path = data_dir / JWT_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process started at the same moment and wrote it
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    log.warning(
        "JWT_SECRET is not set: generated one and kept it in %s (mode 0600). "
        "Set JWT_SECRET in production.",
        path,
    )
    return secret


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment and `.env`, or raise ConfigError with one line each."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if loc:
            name = loc[0].upper()
        elif ":" in msg:
            name, msg = (part.strip() for part in msg.split(":", 1))
        else:
            name = "configuration"
        expected = EXPECTED.get(name)
        lines.append(f"{name}: {msg}" + (f" (expected {expected})" if expected else ""))
    return lines
