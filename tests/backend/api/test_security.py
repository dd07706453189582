"""Client address, admin CIDRs, API keys and the token bucket, as plain functions (no server)."""

from __future__ import annotations

import ipaddress

import pytest
from ef_backend.core.errors import Forbidden, RateLimited, Unauthorized
from ef_backend.core.ratelimit import RateLimiter
from ef_backend.core.security import (
    Caller,
    bearer_token,
    client_address,
    identify,
    is_admin,
    rate_limit_bucket,
    request_client_address,
    require_admin,
    require_admin_token,
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
        # Relayed by a trusted proxy yet no believable client: unknown, never the proxy.
        ("10.0.0.2", "10.0.0.4, 10.0.0.3", "unknown"),  # only proxies
        ("10.0.0.2", None, "unknown"),
        ("10.0.0.2", "", "unknown"),
        ("10.0.0.2", ",", "unknown"),
        ("10.0.0.2", "garbage", "unknown"),
        ("10.0.0.2", "192.168.1.9, garbage", "unknown"),
        ("10.0.0.2", "garbage, 192.168.1.9", "unknown"),
        ("10.0.0.2", "8.8.8.8:1234", "unknown"),
        ("10.0.0.2", "[2001:db8::1]", "unknown"),
        ("10.0.0.2", "192.168.1.9,,", "unknown"),
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
    assert not is_admin("unknown", ADMIN)
    with pytest.raises(Forbidden) as refused:
        require_admin("127.0.0.2", ADMIN)
    # The answer does not echo the client's address.
    assert refused.value.message == "The admin API is only open to clients in EF_ADMIN_CIDRS."


def test_bearer_tokens_and_key_names() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
    caller = identify(address="127.0.0.1", authorization="Bearer key-bbbbbbbbbbbb", api_keys=KEYS)
    assert caller.name == "openwebui"
    require_key(caller, KEYS)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [(None, "API key required"), ("Bearer key-cccccccccccc", "Invalid API key")],
)
def test_keys_required_when_configured(authorization: str | None, message: str) -> None:
    caller = identify(address="127.0.0.1", authorization=authorization, api_keys=KEYS)
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


@pytest.mark.parametrize(
    ("address", "key_name", "bucket"),
    [
        ("192.168.1.5", None, "addr:192.168.1.5"),
        ("2001:db8:1:2:aaaa::1", None, "addr:2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", None, "addr:2001:db8:1:2::/64"),  # same /64, same bucket
        ("2001:db8:1:3::1", None, "addr:2001:db8:1:3::/64"),
        ("unknown", None, "addr:unknown"),
        ("2001:db8:1:2::1", "homeassistant", "key:homeassistant"),
    ],
)
def test_rate_limit_buckets(address: str, key_name: str | None, bucket: str) -> None:
    assert rate_limit_bucket(Caller(address=address, key_name=key_name)) == bucket


def test_request_address_reads_every_forwarded_header() -> None:
    """Two X-Forwarded-For headers are one list: the proxy appended to the last one."""
    scope = {
        "client": ("10.0.0.2", 5000),
        "headers": [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-for", b"192.168.1.9")],
    }
    assert request_client_address(scope, PROXIES) == "192.168.1.9"
    scope["headers"] = [(b"x-forwarded-for", b"192.168.1.9"), (b"x-forwarded-for", b"garbage")]
    assert request_client_address(scope, PROXIES) == "unknown"


def test_admin_token() -> None:
    require_admin_token(None, None)  # not configured: nothing asked
    token = "admin-token-0123456789"
    require_admin_token(f"Bearer {token}", token)
    for authorization in (None, "Bearer wrong-token-0123456789", f"Basic {token}"):
        with pytest.raises(Unauthorized) as refused:
            require_admin_token(authorization, token)
        assert refused.value.message == (
            "The admin API needs 'Authorization: Bearer <token>' with EF_ADMIN_TOKEN."
        )
