"""``ef-healthcheck`` (the cron fallback) against a real backend and a real SMTP server:
one email when a check starts failing, none while it keeps failing, one when it recovers."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ef_healthcheck.__main__ import settings_from

from tests.monitoring.support import SmtpSink, start_backend, text_body
from tests.utils.procs import VENV_BIN, Server, free_port, make_env

HEALTHCHECK = str(VENV_BIN / "ef-healthcheck")


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


def _run(
    tmp_path: Path,
    url: str,
    smtp_port: int,
    *extra: str,
    password: str = "s3cret-for-the-test-only",
    disk_max_ratio: str = "1.0",
) -> subprocess.CompletedProcess[str]:
    """Run the health check; the disk check passes unless ``disk_max_ratio`` is lowered (the
    host's own disk, which the tests do not control, must not decide them)."""
    secret = tmp_path / "smtp_password"
    secret.write_text(password + "\n")
    args = [
        HEALTHCHECK,
        "--url",
        url,
        "--data-dir",
        str(tmp_path / "data"),
        "--state-file",
        str(tmp_path / "state.json"),
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        str(smtp_port),
        "--smtp-username",
        "alerts@echoforge.test",
        "--smtp-password-file",
        str(secret),
        "--smtp-starttls",
        "false",
        "--from",
        "EchoForge <echoforge@echoforge.test>",
        "--to",
        "ops@echoforge.test",
        "--timeout",
        "5",
        "--disk-max-ratio",
        disk_max_ratio,
        *extra,
    ]
    return subprocess.run(
        args, env=make_env({"EF_LOG_LEVEL": "INFO"}), capture_output=True, text=True, timeout=60
    )


@pytest.mark.server
def test_one_email_on_failure_none_while_failing_one_on_recovery(
    tmp_path: Path, piper_tts: Server, smtp: SmtpSink
) -> None:
    data = tmp_path / "data"
    port = free_port()
    backend = start_backend(tmp_path, port=port, tts_url=piper_tts.url, data_dir=data)
    backend.wait_ready("/health/ready", timeout=120)
    try:
        first = _run(tmp_path, backend.url, smtp.port)
        assert first.returncode == 0, first.stderr
        assert smtp.snapshot() == []  # healthy from the start: nothing to say

        backend.stop()
        failing = _run(tmp_path, backend.url, smtp.port)
        assert failing.returncode == 1, failing.stderr
        (email,) = smtp.snapshot()
        assert email["Subject"].startswith("[EchoForge] FAILING on ")
        assert email["Subject"].endswith(": ready")
        assert email["To"] == "ops@echoforge.test"
        body = text_body(email)
        assert f"[FAIL] ready: {backend.url}/health/ready unreachable" in body
        assert f"[OK  ] disk {data}:" in body
        assert smtp.logins == ["alerts@echoforge.test"]  # the password came from the file
        assert json.loads((tmp_path / "state.json").read_text())["failing"] == ["ready"]

        still = _run(tmp_path, backend.url, smtp.port)
        assert still.returncode == 1
        assert len(smtp.snapshot()) == 1  # still failing: no second email

        backend = start_backend(tmp_path, port=port, tts_url=piper_tts.url, data_dir=data)
        backend.wait_ready("/health/ready", timeout=120)
        recovered = _run(tmp_path, backend.url, smtp.port)
        assert recovered.returncode == 0, recovered.stderr
        emails = smtp.snapshot()
        assert len(emails) == 2
        assert "RECOVERED" in emails[1]["Subject"]
        assert "failing before: ready" in text_body(emails[1])

        again = _run(tmp_path, backend.url, smtp.port)
        assert again.returncode == 0
        assert len(smtp.snapshot()) == 2
    finally:
        backend.stop()


def test_a_new_failing_check_is_news(tmp_path: Path, smtp: SmtpSink) -> None:
    """The state is the set of failing checks: another check failing too sends one more email.
    (Nothing listens at the URL, so "ready" fails for real.)"""
    url = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "data").mkdir()
    assert _run(tmp_path, url, smtp.port).returncode == 1
    assert _run(tmp_path, url, smtp.port, disk_max_ratio="0.000001").returncode == 1
    assert _run(tmp_path, url, smtp.port, disk_max_ratio="0.000001").returncode == 1
    subjects = [m["Subject"] for m in smtp.snapshot()]
    assert len(subjects) == 2, subjects
    assert subjects[1].endswith(f": ready, disk {tmp_path / 'data'}")


def test_unsent_email_is_retried_next_run(tmp_path: Path, smtp: SmtpSink) -> None:
    """SMTP down: exit 3 and the state is not saved, so the next run sends the email."""
    url = f"http://127.0.0.1:{free_port()}"
    closed = free_port()
    result = _run(tmp_path, url, closed)
    assert result.returncode == 3
    assert "could not send the email via 127.0.0.1" in result.stderr
    assert not (tmp_path / "state.json").exists()
    assert _run(tmp_path, url, smtp.port).returncode == 1
    assert len(smtp.snapshot()) == 1


def test_wrong_password_is_reported(tmp_path: Path, smtp: SmtpSink) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _run(tmp_path, url, smtp.port, password="not-the-password")
    assert result.returncode == 3
    assert smtp.snapshot() == []
    assert "not-the-password" not in result.stderr  # the secret never reaches the log


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("--smtp-host", "EF_SMTP_HOST (--smtp-host) is not set"),
        ("--to", "EF_ALERT_EMAIL_TO (--to) is not set"),
        ("--disk-max-ratio", "EF_HEALTHCHECK_DISK_MAX_RATIO: Input should be less than or equal"),
    ],
)
def test_missing_settings_exit_2_naming_them(tmp_path: Path, drop: str, message: str) -> None:
    value = "1.5" if drop == "--disk-max-ratio" else ""
    result = _run(tmp_path, "http://127.0.0.1:1", 25, drop, value)
    assert result.returncode == 2
    assert message in result.stderr


def test_variables_are_read_by_their_full_name_and_flags_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``EF_*`` variables configure a run, a flag overrides its variable, and a bare name that
    another program may set (``SMTP_HOST``) is not read."""
    monkeypatch.setenv("EF_SMTP_HOST", "smtp.from-env.test")
    monkeypatch.setenv("EF_ALERT_EMAIL_TO", "a@echoforge.test, b@echoforge.test")
    monkeypatch.setenv("EF_ALERT_EMAIL_FROM", "echoforge@echoforge.test")
    monkeypatch.setenv("EF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EF_SMTP_STARTTLS", "false")
    monkeypatch.setenv("SMTP_PORT", "2525")
    settings = settings_from(["--smtp-host", "smtp.from-flag.test", "--disk-path", "/a"])
    assert settings.smtp_host == "smtp.from-flag.test"
    assert settings.smtp_port == 587
    assert settings.mail_to == ("a@echoforge.test", "b@echoforge.test")
    assert settings.smtp_starttls is False
    assert settings.checked_disks == (Path("/a"),)
    assert settings.state_path == tmp_path / "healthcheck.state.json"


@pytest.fixture(scope="module")
def smarthost_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (what a homelab smarthost often has)."""
    directory = tmp_path_factory.mktemp("smarthost-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_smtp(smarthost_cert: tuple[Path, Path]) -> Iterator[SmtpSink]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*smarthost_cert)
    sink = SmtpSink(tls_context=context).start()
    try:
        yield sink
    finally:
        sink.stop()


def test_the_password_goes_only_to_a_server_whose_certificate_checks_out(
    tmp_path: Path, tls_smtp: SmtpSink, smarthost_cert: tuple[Path, Path]
) -> None:
    """STARTTLS verifies the certificate: an unknown one stops the login (nothing sent); with
    the smarthost's CA in EF_SMTP_CA_FILE the email goes out."""
    url = f"http://127.0.0.1:{free_port()}"
    refused = _run(tmp_path, url, tls_smtp.port, "--smtp-starttls", "true")
    assert refused.returncode == 3
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert tls_smtp.logins == [] and tls_smtp.snapshot() == []

    cert, _ = smarthost_cert
    sent = _run(
        tmp_path, url, tls_smtp.port, "--smtp-starttls", "true", "--smtp-ca-file", str(cert)
    )
    assert sent.returncode == 1, sent.stderr
    assert tls_smtp.logins == ["alerts@echoforge.test"]
    assert len(tls_smtp.snapshot()) == 1
