"""Settings of ``ef-healthcheck``: ``EF_*`` variables (the names the backend and Alertmanager use
for the same things), overridden by command-line flags.

Each field is read from exactly its variable (``validation_alias``), never from a bare name such
as ``SMTP_HOST`` that another program on the host may set; the flags pass the same names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The thresholds of the Prometheus alerts EFDiskUsageHigh and EFDatabaseLarge (a test keeps them
#: equal to monitoring/mixin/config.py).
DEFAULT_DISK_MAX_RATIO = 0.80
DEFAULT_DB_MAX_BYTES = 1024**3


class HealthcheckSettings(BaseSettings):
    """Everything one run needs; a bad or missing value names its variable and flag."""

    model_config = SettingsConfigDict(extra="ignore")

    url: str = Field(default="http://127.0.0.1:8000", validation_alias="EF_HEALTHCHECK_URL")
    data_dir: Path = Field(default=Path("./data"), validation_alias="EF_DATA_DIR")
    #: Paths whose disk to check (comma-separated in the variable); empty: the data directory.
    disk_paths: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(), validation_alias="EF_HEALTHCHECK_DISK_PATHS"
    )
    disk_max_ratio: float = Field(
        default=DEFAULT_DISK_MAX_RATIO,
        gt=0,
        le=1,
        validation_alias="EF_HEALTHCHECK_DISK_MAX_RATIO",
    )
    db_max_bytes: int = Field(
        default=DEFAULT_DB_MAX_BYTES, gt=0, validation_alias="EF_HEALTHCHECK_DB_MAX_BYTES"
    )
    #: Default: ``<data dir>/healthcheck.state.json``.
    state_file: Path | None = Field(default=None, validation_alias="EF_HEALTHCHECK_STATE_FILE")
    timeout_s: float = Field(default=10.0, gt=0, validation_alias="EF_HEALTHCHECK_TIMEOUT_S")
    smtp_host: str = Field(default="", validation_alias="EF_SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias="EF_SMTP_PORT")
    smtp_username: str = Field(default="", validation_alias="EF_SMTP_USERNAME")
    smtp_password_file: Path | None = Field(default=None, validation_alias="EF_SMTP_PASSWORD_FILE")
    smtp_starttls: bool = Field(default=True, validation_alias="EF_SMTP_STARTTLS")
    smtp_ssl: bool = Field(default=False, validation_alias="EF_SMTP_SSL")
    #: CA certificates the smarthost's certificate is checked against (default: the system's);
    #: it is always checked, since the password follows.
    smtp_ca_file: Path | None = Field(default=None, validation_alias="EF_SMTP_CA_FILE")
    mail_from: str = Field(default="", validation_alias="EF_ALERT_EMAIL_FROM")
    #: Comma-separated in the variable and the flag.
    mail_to: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="EF_ALERT_EMAIL_TO"
    )

    @field_validator("mail_to", "disk_paths", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(a.strip() for a in value.split(",") if a.strip())
        return value

    @field_validator("smtp_password_file", "state_file", "smtp_ca_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _required(self) -> HealthcheckSettings:
        if not self.smtp_host:
            raise ValueError("EF_SMTP_HOST (--smtp-host) is not set: nowhere to send email")
        if not self.mail_to:
            raise ValueError("EF_ALERT_EMAIL_TO (--to) is not set: nobody to email")
        if not self.mail_from:
            raise ValueError("EF_ALERT_EMAIL_FROM (--from) is not set")
        if self.smtp_username and self.smtp_password_file is None:
            raise ValueError("EF_SMTP_USERNAME is set but EF_SMTP_PASSWORD_FILE is not")
        return self

    @property
    def checked_disks(self) -> tuple[Path, ...]:
        return self.disk_paths or (self.data_dir,)

    @property
    def state_path(self) -> Path:
        return self.state_file or self.data_dir / "healthcheck.state.json"
