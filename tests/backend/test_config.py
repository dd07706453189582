"""Settings that guard access: API keys from a file (a Docker secret), their minimum length,
the admin token, and the refusal to start with a trusted proxy among the admins."""

from __future__ import annotations

from pathlib import Path

import pytest
from ef_backend.core.config import Settings
from pydantic import ValidationError


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type, unused-ignore]


def test_api_keys_are_read_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "api_keys"
    secret.write_text("homeassistant:ha-key-0123456789abcdef\n\nopenwebui:webui-key-0123456789ab\n")
    settings = _settings(api_keys_file=secret, api_keys="cli:cli-key-0123456789abcdef")
    assert settings.api_keys == {
        "cli-key-0123456789abcdef": "cli",
        "ha-key-0123456789abcdef": "homeassistant",
        "webui-key-0123456789ab": "openwebui",
    }
    empty = tmp_path / "empty"
    empty.write_text("")
    assert _settings(api_keys_file=empty).api_keys == {}  # an empty secret: keys off
    with pytest.raises(ValidationError, match=r"EF_API_KEYS_FILE=.* cannot be read"):
        _settings(api_keys_file=tmp_path / "missing")


@pytest.mark.parametrize("key", ["short-key-123456", "changeme"])
def test_keys_and_admin_token_resist_guessing(key: str) -> None:
    if len(key) == 16:  # the shortest accepted
        assert _settings(api_keys=f"ha:{key}").api_keys == {key: "ha"}
        assert _settings(admin_token=key).admin_token is not None
        key = key[:-1]
    with pytest.raises(ValidationError, match="placeholder or shorter than 16 characters"):
        _settings(api_keys=f"ha:{key}")
    with pytest.raises(ValidationError, match="EF_ADMIN_TOKEN is a placeholder or shorter"):
        _settings(admin_token=key)


def test_a_trusted_proxy_among_the_admins_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match=r"EF_TRUSTED_PROXIES 127\.0\.0\.0/8 overlaps"):
        _settings(trusted_proxies="127.0.0.0/8")
    ok = _settings(trusted_proxies="172.30.53.2/32")
    assert [str(n) for n in ok.trusted_proxies] == ["172.30.53.2/32"]
