"""``ef-healthcheck``: the cron fallback that emails ops without Prometheus.

It checks the backend's ``/health/ready``, the disk usage of the data directory and the size of
the SQLite database against thresholds, and emails only when the set of failing checks changes
(and once more when everything recovers), remembering the last state in a small JSON file. The
thresholds default to those of the Prometheus alerts (EFDiskUsageHigh, EFDatabaseLarge).

Only the standard library, requests and psutil: it must run where the backend does not.
Exit status: 0 healthy, 1 a check fails, 2 bad configuration, 3 the email could not be sent
(the state is then kept, so the next run tries again).

Crontab, every 5 minutes (``MAILTO=""``: this command sends its own mail; docs/monitoring.md
has the variant that runs inside the compose stack)::

    MAILTO=""
    */5 * * * * /opt/echoforge/.venv/bin/ef-healthcheck --data-dir /srv/echoforge/data
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import smtplib
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import psutil
import requests

log = logging.getLogger(__name__)

DEFAULT_DISK_MAX_RATIO = 0.80
DEFAULT_DB_MAX_BYTES = 1024**3
EXIT_OK, EXIT_FAILING, EXIT_CONFIG, EXIT_NOTIFY = 0, 1, 2, 3


@dataclass(frozen=True)
class CheckResult:
    """One check: ``name`` is stable (it is what the state compares), ``detail`` says why."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Options:
    url: str
    data_dir: Path
    disk_paths: tuple[Path, ...]
    disk_max_ratio: float
    db_max_bytes: int
    state_file: Path
    timeout_s: float
    smtp_host: str
    smtp_port: int
    smtp_username: str
    smtp_password_file: Path | None
    smtp_starttls: bool
    smtp_ssl: bool
    mail_from: str
    mail_to: tuple[str, ...]


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it."""


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


def run_checks(options: Options) -> list[CheckResult]:
    results = [check_ready(options.url, options.timeout_s)]
    results += [check_disk(path, options.disk_max_ratio) for path in options.disk_paths]
    results.append(check_database(options.data_dir, options.db_max_bytes))
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
    results: Sequence[CheckResult], previous: Sequence[str], options: Options
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
        f"Backend: {options.url}",
        "What to do: runbooks/alerts/EFBackendNotReady.md, EFDiskUsageHigh.md, EFDatabaseLarge.md",
        "You get one email when the set of failing checks changes, and one when it recovers.",
    ]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = options.mail_from
    message["To"] = ", ".join(options.mail_to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="echoforge")
    message.set_content("\n".join(lines) + "\n")
    return message


def send(message: EmailMessage, options: Options) -> None:
    """Deliver through the smarthost; raises OSError/SMTPException on failure."""
    smtp_class = smtplib.SMTP_SSL if options.smtp_ssl else smtplib.SMTP
    with smtp_class(options.smtp_host, options.smtp_port, timeout=options.timeout_s) as smtp:
        if options.smtp_starttls and not options.smtp_ssl:
            smtp.starttls()
        if options.smtp_username:
            smtp.login(options.smtp_username, _password(options))
        smtp.send_message(message)


def _password(options: Options) -> str:
    if options.smtp_password_file is None:
        raise ConfigError("EF_SMTP_USERNAME is set but EF_SMTP_PASSWORD_FILE is not")
    return options.smtp_password_file.read_text(encoding="utf-8").strip()


# ------------------------------------------------------------------------------------------- CLI


def _bool(value: str) -> bool:
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"expected true or false, got {value!r}")


def parse_options(argv: Sequence[str] | None, env: Mapping[str, str]) -> Options:
    """Flags win over ``EF_*`` variables, which win over the defaults."""
    e = env.get
    parser = argparse.ArgumentParser(
        prog="ef-healthcheck",
        description="Check EchoForge and email ops when the state changes (cron fallback).",
    )
    parser.add_argument("--url", default=e("EF_HEALTHCHECK_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--data-dir", default=e("EF_DATA_DIR", "./data"))
    parser.add_argument(
        "--disk-path",
        action="append",
        default=None,
        help="path whose disk to check (repeatable; default: the data directory)",
    )
    parser.add_argument(
        "--disk-max-ratio",
        type=float,
        default=float(e("EF_HEALTHCHECK_DISK_MAX_RATIO", str(DEFAULT_DISK_MAX_RATIO))),
    )
    parser.add_argument(
        "--db-max-bytes",
        type=int,
        default=int(e("EF_HEALTHCHECK_DB_MAX_BYTES", str(DEFAULT_DB_MAX_BYTES))),
    )
    parser.add_argument("--state-file", default=e("EF_HEALTHCHECK_STATE_FILE", ""))
    parser.add_argument("--timeout", type=float, default=float(e("EF_HEALTHCHECK_TIMEOUT_S", "10")))
    parser.add_argument("--smtp-host", default=e("EF_SMTP_HOST", ""))
    parser.add_argument("--smtp-port", type=int, default=int(e("EF_SMTP_PORT", "587")))
    parser.add_argument("--smtp-username", default=e("EF_SMTP_USERNAME", ""))
    parser.add_argument("--smtp-password-file", default=e("EF_SMTP_PASSWORD_FILE", ""))
    parser.add_argument("--smtp-starttls", default=e("EF_SMTP_STARTTLS", "true"))
    parser.add_argument("--smtp-ssl", default=e("EF_SMTP_SSL", "false"))
    parser.add_argument("--from", dest="mail_from", default=e("EF_ALERT_EMAIL_FROM", ""))
    parser.add_argument(
        "--to", dest="mail_to", default=e("EF_ALERT_EMAIL_TO", ""), help="comma-separated"
    )
    args = parser.parse_args(argv)

    data_dir = Path(args.data_dir)
    if not 0 < args.disk_max_ratio <= 1:
        raise ConfigError(f"--disk-max-ratio must be in (0, 1], got {args.disk_max_ratio}")
    if args.db_max_bytes <= 0:
        raise ConfigError(f"--db-max-bytes must be positive, got {args.db_max_bytes}")
    if not args.smtp_host:
        raise ConfigError("EF_SMTP_HOST (--smtp-host) is not set: nowhere to send email")
    mail_to = tuple(a.strip() for a in args.mail_to.split(",") if a.strip())
    if not mail_to:
        raise ConfigError("EF_ALERT_EMAIL_TO (--to) is not set: nobody to email")
    if not args.mail_from:
        raise ConfigError("EF_ALERT_EMAIL_FROM (--from) is not set")
    if args.smtp_username and not args.smtp_password_file:
        raise ConfigError("EF_SMTP_USERNAME is set but EF_SMTP_PASSWORD_FILE is not")
    return Options(
        url=args.url,
        data_dir=data_dir,
        disk_paths=tuple(Path(p) for p in (args.disk_path or [str(data_dir)])),
        disk_max_ratio=args.disk_max_ratio,
        db_max_bytes=args.db_max_bytes,
        state_file=Path(args.state_file)
        if args.state_file
        else data_dir / "healthcheck.state.json",
        timeout_s=args.timeout,
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        smtp_username=args.smtp_username,
        smtp_password_file=Path(args.smtp_password_file) if args.smtp_password_file else None,
        smtp_starttls=_bool(args.smtp_starttls),
        smtp_ssl=_bool(args.smtp_ssl),
        mail_from=args.mail_from,
        mail_to=mail_to,
    )


def run(options: Options) -> int:
    """One round: check, compare with the last state, email on a change, save the new state."""
    results = run_checks(options)
    for result in results:
        log.info("%s %s: %s", "ok" if result.ok else "FAIL", result.name, result.detail)
    failing = sorted(r.name for r in results if not r.ok)
    previous = load_state(options.state_file)
    if failing != previous:
        try:
            send(compose(results, previous, options), options)
        except (OSError, smtplib.SMTPException, ConfigError) as exc:
            log.error("could not send the email via %s: %s", options.smtp_host, exc)
            return EXIT_NOTIFY
        log.warning("state changed from %s to %s: email sent", previous or "ok", failing or "ok")
    save_state(options.state_file, failing)
    return EXIT_FAILING if failing else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("EF_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        options = parse_options(argv, os.environ)
    except (ConfigError, ValueError) as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
