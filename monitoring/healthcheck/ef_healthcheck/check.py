"""The checks, the remembered state and the email of ``ef-healthcheck``.

It checks the backend's ``/health/ready``, the disk usage of the data directory and the size of
the SQLite database against thresholds, and emails only when the set of failing checks changes
(and once more when everything recovers), remembering the last state in a small JSON file.

Only requests, psutil and pydantic-settings: it runs where the backend does not.
Exit status: 0 healthy, 1 a check fails, 2 bad configuration, 3 the email could not be sent
(the state is then kept, so the next run tries again).
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import psutil
import requests

from ef_healthcheck.config import HealthcheckSettings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILING, EXIT_CONFIG, EXIT_NOTIFY = 0, 1, 2, 3


@dataclass(frozen=True)
class CheckResult:
    """One check: ``name`` is stable (it is what the state compares), ``detail`` says why."""

    name: str
    ok: bool
    detail: str


# ---------------------------------------------------------------------------------------- checks


def check_ready(url: str, timeout_s: float) -> CheckResult:
    """The backend says it is ready (database writable, engine reachable, cache writable)."""
    target = url.rstrip("/") + "/health/ready"
    try:
        response = requests.get(target, timeout=timeout_s)
    except requests.RequestException as exc:
        return CheckResult("ready", False, f"{target} unreachable: {type(exc).__name__}")
    if response.status_code == 200:
        return CheckResult("ready", True, f"{target} answered 200")
    return CheckResult(
        "ready", False, f"{target} answered {response.status_code}{_failing_checks(response)}"
    )


def _failing_checks(response: requests.Response) -> str:
    """Names of the failing checks in a /health JSON body, when there is one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    checks = body.get("checks") if isinstance(body, dict) else None
    if isinstance(checks, dict):
        bad = [
            name for name, v in checks.items() if isinstance(v, dict) and v.get("status") != "ok"
        ]
    elif isinstance(checks, list):
        bad = [
            str(c.get("name")) for c in checks if isinstance(c, dict) and c.get("status") != "ok"
        ]
    else:
        return ""
    return f" (failing: {', '.join(bad)})" if bad else ""


def check_disk(path: Path, max_ratio: float) -> CheckResult:
    name = f"disk {path}"
    try:
        usage = psutil.disk_usage(str(path))
    except OSError as exc:
        return CheckResult(name, False, f"cannot read disk usage: {exc.strerror or exc}")
    usable = usage.used + usage.free
    ratio = usage.used / usable if usable else 0.0
    detail = f"{ratio:.1%} used (threshold {max_ratio:.0%}), {usage.free / 1024**3:.1f} GiB free"
    return CheckResult(name, ratio <= max_ratio, detail)


def check_database(data_dir: Path, max_bytes: int) -> CheckResult:
    """SQLite file plus WAL under the threshold; no file (PostgreSQL in use) passes."""
    db = data_dir / "db.sqlite"
    if not db.exists():
        return CheckResult("database size", True, f"{db} not found: not using SQLite here")
    size = sum(p.stat().st_size for p in (db, data_dir / "db.sqlite-wal") if p.exists())
    detail = f"{size / 1024**2:.1f} MiB (threshold {max_bytes / 1024**2:.0f} MiB)"
    return CheckResult("database size", size <= max_bytes, detail)


def run_checks(settings: HealthcheckSettings) -> list[CheckResult]:
    results = [check_ready(settings.url, settings.timeout_s)]
    results += [check_disk(path, settings.disk_max_ratio) for path in settings.checked_disks]
    results.append(check_database(settings.data_dir, settings.db_max_bytes))
    return results


# ----------------------------------------------------------------------------------------- state


def load_state(path: Path) -> list[str]:
    """Names of the checks failing at the last run; none if there was no (readable) state."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, exc)
        return []
    failing = data.get("failing", []) if isinstance(data, dict) else []
    return sorted(str(name) for name in failing)


def save_state(path: Path, failing: Sequence[str]) -> None:
    """Write atomically, so a crash mid-write never leaves a half state behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"failing": sorted(failing), "time": time.time()}), encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------- email


def compose(
    results: Sequence[CheckResult], previous: Sequence[str], settings: HealthcheckSettings
) -> EmailMessage:
    failing = [r for r in results if not r.ok]
    host = socket.gethostname()
    if failing:
        subject = f"[EchoForge] FAILING on {host}: " + ", ".join(r.name for r in failing)
        opening = "EchoForge health check found a problem."
    else:
        subject = f"[EchoForge] RECOVERED on {host}: all checks pass"
        opening = "EchoForge health check: every check passes again (failing before: "
        opening += ", ".join(previous) + ")."
    lines = [opening, ""]
    lines += [f"[{'OK  ' if r.ok else 'FAIL'}] {r.name}: {r.detail}" for r in results]
    lines += [
        "",
        f"Backend: {settings.url}",
        "What to do: runbooks/alerts/EFBackendNotReady.md, EFDiskUsageHigh.md, EFDatabaseLarge.md",
        "You get one email when the set of failing checks changes, and one when it recovers.",
    ]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.mail_from
    message["To"] = ", ".join(settings.mail_to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="echoforge")
    message.set_content("\n".join(lines) + "\n")
    return message


def send(message: EmailMessage, settings: HealthcheckSettings) -> None:
    """Deliver through the smarthost; raises OSError/SMTPException on failure.

    TLS (implicit or STARTTLS) checks the server's certificate and name against the system's
    CA certificates or EF_SMTP_CA_FILE, so the password is only ever sent to the real server.
    """
    context = ssl.create_default_context(
        cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    )
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.timeout_s
    smtp = (
        smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        if settings.smtp_ssl
        else smtplib.SMTP(host, port, timeout=timeout)
    )
    with smtp:
        if settings.smtp_starttls and not settings.smtp_ssl:
            smtp.starttls(context=context)
        if settings.smtp_username:
            smtp.login(settings.smtp_username, _password(settings))
        smtp.send_message(message)


def _password(settings: HealthcheckSettings) -> str:
    assert settings.smtp_password_file is not None  # the settings require it with a username
    return settings.smtp_password_file.read_text(encoding="utf-8").strip()


def run(settings: HealthcheckSettings) -> int:
    """One round: check, compare with the last state, email on a change, save the new state."""
    results = run_checks(settings)
    for result in results:
        log.info("%s %s: %s", "ok" if result.ok else "FAIL", result.name, result.detail)
    failing = sorted(r.name for r in results if not r.ok)
    previous = load_state(settings.state_path)
    if failing != previous:
        try:
            send(compose(results, previous, settings), settings)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("could not send the email via %s: %s", settings.smtp_host, exc)
            return EXIT_NOTIFY
        log.warning("state changed from %s to %s: email sent", previous or "ok", failing or "ok")
    save_state(settings.state_path, failing)
    return EXIT_FAILING if failing else EXIT_OK
