"""Settings for ef_backend: environment variables with the prefix ``EF_`` and an optional ``.env``.

Every field here is listed, with its default, in the README's settings table; a test keeps the
two in step.
"""

from __future__ import annotations

import ipaddress
import math
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from ef_common.version import version
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_PLACEHOLDER_KEYS = {"changeme", "change-me", "secret", "password", "key", "apikey"}
#: The shortest API key or admin token accepted: 16 random characters resist online guessing.
MIN_SECRET_CHARS = 16

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return _csv_items(value)
    return value


def _csv_items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` as SQLAlchemy URLs with the psycopg 3 driver."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def _parse_keys(value: str) -> dict[str, str]:
    """``name:key`` items (commas or lines) to ``{key: name}``; refuses short or placeholder
    keys."""
    keys: dict[str, str] = {}
    for item in _csv_items(value.replace("\n", ",")):
        name, sep, key = item.partition(":")
        if not sep or not name or not key:
            raise ValueError(f"EF_API_KEYS entry must be name:key, got {name!r}:<hidden>")
        if key.lower() in _PLACEHOLDER_KEYS or len(key) < MIN_SECRET_CHARS:
            raise ValueError(
                f"EF_API_KEYS key for {name!r} is a placeholder or shorter than "
                f"{MIN_SECRET_CHARS} characters"
            )
        keys[key] = name
    return keys


class Settings(BaseSettings):
    """All runtime configuration of the backend; one instance per process."""

    model_config = SettingsConfigDict(
        env_prefix="EF_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Network and process
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes")
    frontend_dir: Path = Path("frontend")
    log_level: str = "INFO"

    # Storage
    data_dir: Path = Path("./data")
    database_url: str = ""
    cache_max_bytes: int = Field(default=1024**3, ge=0)
    #: Behind ef_proxy: cached audio is answered with ``X-Accel-Redirect: <prefix><file>`` and
    #: nginx sends the file from its read-only view of the cache; empty = the backend sends it.
    accel_redirect_prefix: str = ""
    backup_dir: Path | None = Field(default=None, description="default: EF_DATA_DIR/backups")
    backup_keep: int = Field(default=7, ge=1, description="backups `ef backup` keeps")
    #: Past the cap, eviction goes down to this share of it (a full cache is normal, not churn).
    cache_low_water_ratio: float = Field(default=0.9, gt=0, le=1)
    cache_scope: Literal["key", "shared"] = Field(
        default="key",
        description="key: each API key has its own cache entries; shared: one cache for all",
    )
    job_retention_days: float = Field(
        default=7.0, gt=0, description="finished jobs (and their text) are deleted after this"
    )
    min_free_bytes: int = Field(
        default=100 * 1024**2, ge=0, description="readiness fails below this much free space"
    )

    # Engine
    tts_url: str = "http://127.0.0.1:5002"
    tts_timeout_s: float = Field(default=60.0, gt=0)
    tts_connect_timeout_s: float = Field(default=3.0, gt=0)
    tts_concurrency: int = Field(default=2, ge=1)
    default_voice: str = ""
    voice_map: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    # Queue
    queue_max: int = Field(default=100, ge=1)
    queue_key_share: float = Field(
        default=0.5, gt=0, le=1, description="the part of EF_QUEUE_MAX one API key may fill"
    )
    sync_timeout_s: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    job_lease_s: float = Field(default=30.0, gt=0)
    job_retry_backoff_s: float = Field(default=0.5, ge=0)

    # Input limits
    max_text_chars: int = Field(default=5000, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, description="request body limit")
    min_speed: float = Field(default=0.25, gt=0)
    max_speed: float = Field(default=4.0, gt=0)

    # Access
    api_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    api_keys_file: Path | None = None
    admin_token: SecretStr | None = None
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "ef_backend"]
    )
    admin_cidrs: Annotated[list[Network], NoDecode] = Field(
        default_factory=lambda: [
            ipaddress.ip_network("127.0.0.1/32"),
            ipaddress.ip_network("::1/128"),
            ipaddress.ip_network("192.168.1.0/24"),
        ]
    )
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(default_factory=list)
    rate_limit: int = Field(
        default=120, ge=0, description="requests per minute per client; 0 = off"
    )

    # Links on the admin page (shown only when set)
    grafana_url: str = ""
    prometheus_url: str = ""
    alertmanager_url: str = ""
    runbooks_url: str = ""

    # Wyoming (Home Assistant): docs/home-assistant.md
    wyoming_enabled: bool = True
    wyoming_host: str = "127.0.0.1"
    wyoming_port: int = Field(default=10200, ge=1, le=65535)
    #: Who may connect (Wyoming has no authentication); empty: the EF_ADMIN_CIDRS networks.
    wyoming_cidrs: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = Field(
        default_factory=list
    )
    wyoming_zeroconf: bool = False
    wyoming_zeroconf_name: str = "echoforge"
    #: The address announced over mDNS; empty: EF_WYOMING_HOST, or this host's outgoing LAN
    #: address when that is 0.0.0.0.
    wyoming_zeroconf_address: str = ""

    # Build identity, set by the image build (VERSION at the repository root, ef_common.version)
    version: str = Field(default_factory=version)
    commit: str = "unknown"

    @field_validator("admin_cidrs", "trusted_proxies", "wyoming_cidrs", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        items = _split_csv(value)
        if not isinstance(items, list):
            return items
        networks = []
        for item in items:
            if isinstance(item, str):
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError as exc:
                    raise ValueError(f"not a network address: {item!r} ({exc})") from None
            else:
                networks.append(item)
        return networks

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        """``name:key,name2:key2``: names let logs and metrics say who called, never the key."""
        return _parse_keys(value) if isinstance(value, str) else value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: object) -> object:
        items = _split_csv(value)
        if isinstance(items, list):
            return [str(item).lower() for item in items]
        return items

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        secret = value.get_secret_value()
        if secret.lower() in _PLACEHOLDER_KEYS or len(secret) < MIN_SECRET_CHARS:
            raise ValueError(
                f"EF_ADMIN_TOKEN is a placeholder or shorter than {MIN_SECRET_CHARS} characters"
            )
        return value

    @field_validator("voice_map", mode="before")
    @classmethod
    def _parse_voice_map(cls, value: object) -> object:
        """``alloy=joe,echo=other``: OpenAI voice name to engine voice."""
        if not isinstance(value, str):
            return value
        mapping: dict[str, str] = {}
        for item in _csv_items(value):
            name, sep, voice = item.partition("=")
            if not sep or not name or not voice:
                raise ValueError(f"EF_VOICE_MAP entry must be openai_name=voice, got {item!r}")
            mapping[name.strip()] = voice.strip()
        return mapping

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(
                f"EF_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}"
            )
        return level

    @field_validator("version", "commit", mode="before")
    @classmethod
    def _build_identity(cls, value: object, info: ValidationInfo) -> object:
        """An image built without the build argument has it empty: fall back to the default."""
        if value == "":
            return version() if info.field_name == "version" else "unknown"
        return value

    @field_validator("accel_redirect_prefix")
    @classmethod
    def _check_accel_prefix(cls, value: str) -> str:
        if value and not (value.startswith("/") and value.endswith("/")):
            raise ValueError(
                f"EF_ACCEL_REDIRECT_PREFIX must start and end with '/', e.g. /_ef_cache/, "
                f"got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _check_speeds(self) -> Settings:
        if self.min_speed > self.max_speed:
            raise ValueError("EF_MIN_SPEED must not exceed EF_MAX_SPEED")
        return self

    @model_validator(mode="after")
    def _read_api_keys_file(self) -> Settings:
        """``EF_API_KEYS_FILE`` (a Docker secret): the same ``name:key`` lines or commas."""
        if self.api_keys_file is None:
            return self
        try:
            content = self.api_keys_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(
                f"EF_API_KEYS_FILE={str(self.api_keys_file)!r} cannot be read: {exc.strerror}"
            ) from None
        self.api_keys = {**self.api_keys, **_parse_keys(content)}
        return self

    @model_validator(mode="after")
    def _check_proxies_apart_from_admins(self) -> Settings:
        """A trusted proxy inside the admin CIDRs would make every relayed client an admin."""
        for proxy in self.trusted_proxies:
            for admin in self.admin_cidrs:
                if proxy.version == admin.version and proxy.overlaps(admin):
                    raise ValueError(
                        f"EF_TRUSTED_PROXIES {proxy} overlaps EF_ADMIN_CIDRS {admin}: a request "
                        "from that range is relayed for someone else, never an admin itself. "
                        "Trust only the proxy's own address (compose: the fixed ef_proxy address) "
                        "and keep it out of EF_ADMIN_CIDRS."
                    )
        return self

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: ``EF_DATABASE_URL`` or SQLite in the data directory.

        A plain ``postgresql://`` (what ``psql`` and ``pg_dump`` take) means psycopg 3.
        """
        if not self.database_url:
            return f"sqlite:///{(self.data_dir / 'db.sqlite').resolve()}"
        return sqlalchemy_url(self.database_url)

    @property
    def backups_path(self) -> Path:
        """Where ``ef backup`` writes: ``EF_BACKUP_DIR`` or ``EF_DATA_DIR/backups``."""
        return self.backup_dir or self.data_dir / "backups"

    @property
    def wyoming_allowed(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The networks whose clients the Wyoming listener serves."""
        return self.wyoming_cidrs or self.admin_cidrs

    @property
    def cache_per_key(self) -> bool:
        """Each API key has cache entries of its own (EF_CACHE_SCOPE=key with keys set)."""
        return self.cache_scope == "key" and bool(self.api_keys)

    @property
    def queue_max_per_key(self) -> int | None:
        """How many queued jobs one API key may hold; None with keys off (one client)."""
        if not self.api_keys:
            return None
        return max(1, math.ceil(self.queue_key_share * self.queue_max))

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "audio-cache"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
