"""Client address, admin CIDRs, API keys and the token bucket, as plain functions (no server)."""

from __future__ import annotations

import ipaddress

import pytest
from ef_backend.core.errors import Forbidden, RateLimited, Unauthorized
from ef_backend.core.ratelimit import RateLimiter
from ef_backend.core.security import (
    bearer_token,
    client_address,
    identify,
    is_admin,
    require_admin,
    require_key,
)

PROXIES = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64")]
ADMIN = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("192.168.1.0/24")]
KEYS = {"key-aaaaaaaaaaaa": "homeassistant", "key-bbbbbbbbbbbb": "openwebui"}


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("192.168.1.5", None, "192.168.1.5"),
        ("192.168.1.5", "127.0.0.1", "192.168.1.5"),  # untrusted peer: header ignored
        ("10.0.0.2", "192.168.1.9", "192.168.1.9"),
        ("10.0.0.2", "1.2.3.4, 192.168.1.9", "192.168.1.9"),  # rightmost untrusted hop
        ("10.0.0.2", "192.168.1.9, 10.0.0.3", "192.168.1.9"),  # trusted hops skipped
        ("10.0.0.2", "10.0.0.4, 10.0.0.3", "10.0.0.4"),  # all trusted: the leftmost
        ("10.0.0.2", "garbage", "10.0.0.2"),
        ("10.0.0.2", "192.168.1.9, garbage", "10.0.0.2"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("::ffff:10.0.0.2", "192.168.1.9", "192.168.1.9"),  # IPv4-mapped peer
        ("fd00::5", "2001:db8::1", "2001:db8::1"),
        (None, "192.168.1.9", "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_admin_cidrs() -> None:
    assert is_admin("127.0.0.1", ADMIN)
    assert is_admin("192.168.1.200", ADMIN)
    assert not is_admin("127.0.0.2", ADMIN)
    assert not is_admin("::1", ADMIN)
    assert not is_admin("not-an-ip", ADMIN)
    with pytest.raises(Forbidden, match=r"127\.0\.0\.2 is not one"):
        require_admin("127.0.0.2", ADMIN)


def test_bearer_tokens_and_key_names() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
    caller = identify(
        peer="127.0.0.1",
        forwarded_for=None,
        authorization="Bearer key-bbbbbbbbbbbb",
        trusted_proxies=[],
        api_keys=KEYS,
    )
    assert caller.name == "openwebui"
    require_key(caller, KEYS)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [(None, "API key required"), ("Bearer key-cccccccccccc", "Invalid API key")],
)
def test_keys_required_when_configured(authorization: str | None, message: str) -> None:
    caller = identify(
        peer="127.0.0.1",
        forwarded_for=None,
        authorization=authorization,
        trusted_proxies=[],
        api_keys=KEYS,
    )
    assert caller.name == "anonymous"
    with pytest.raises(Unauthorized, match=message):
        require_key(caller, KEYS)
    require_key(caller, {})  # no keys configured: open


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_minute_then_refills() -> None:
    clock = _Clock()
    limiter = RateLimiter(6, clock=clock)
    assert [limiter.acquire("a") for _ in range(6)] == [0.0] * 6
    wait = limiter.acquire("a")
    assert wait == pytest.approx(10.0)  # one token every 60/6 s
    assert limiter.acquire("b") == 0.0  # another client, another bucket
    clock.now += 10.0
    assert limiter.acquire("a") == 0.0
    with pytest.raises(RateLimited, match="6 requests per minute") as exc:
        limiter.check("a", who="someone")
    assert exc.value.retry_after == pytest.approx(10.0)


def test_rate_limit_off_and_bounded_memory() -> None:
    off = RateLimiter(0)
    assert all(off.acquire("x") == 0.0 for _ in range(1000))
    small = RateLimiter(10, max_buckets=3)
    for i in range(10):
        small.acquire(f"client-{i}")
    assert len(small) == 3
