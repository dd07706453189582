"""The commands that talk to a running service over its HTTP API: health, cache, jobs.

They never open the database: the service stays the only writer. The admin routes answer only
clients in ``EF_ADMIN_CIDRS`` (403 otherwise, exit code 4).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import httpx

from ef_backend.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    CliError,
    emit,
    table,
)

DEFAULT_URL = "http://127.0.0.1:8000"


def default_url() -> str:
    """``EF_URL``, else the address ``ef serve`` listens on (0.0.0.0 reached via loopback)."""
    if os.environ.get("EF_URL"):
        return os.environ["EF_URL"].rstrip("/")
    host = os.environ.get("EF_HOST", "127.0.0.1")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{os.environ.get('EF_PORT', '8000')}"


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help=f"the service (default: EF_URL, else http://EF_HOST:EF_PORT, else {DEFAULT_URL})",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")


class Service:
    """A small client of the admin and health routes; errors become CliError exit codes."""

    def __init__(self, url: str | None, timeout: float) -> None:
        self.url = (url or default_url()).rstrip("/")
        headers = {"User-Agent": "ef-cli"}
        token = os.environ.get("EF_ADMIN_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kw: Any) -> Any:
        try:
            response = self._client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach the service at {self.url}: {exc or type(exc).__name__}",
                EXIT_UNREACHABLE,
                url=self.url,
            ) from None
        if response.status_code in ok:
            return response.json()
        raise CliError(
            f"{method} {path} answered {response.status_code}: {_message(response)}",
            EXIT_REFUSED if 400 <= response.status_code < 500 else EXIT_FAILED,
            status=response.status_code,
        )


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    return str(body)[:200]


_VERDICT = {"ok": "healthy", "degraded": "degraded (a warning, still serving)"}

# -- ef health -----------------------------------------------------------------------------------


def health(args: argparse.Namespace) -> int:
    """GET /health/live and /health: exit 0 when ok or degraded (a warning), 1 when a check
    failed (the service answers 503)."""
    with Service(args.url, args.timeout) as service:
        service.request("GET", "/health/live")
        full = service.request("GET", "/health", ok=(200, 503))
    checks = full.get("checks", {}) if isinstance(full, dict) else {}
    status = str(full.get("status")) if isinstance(full, dict) else "fail"
    healthy = status in ("ok", "degraded")
    rows = [["check", "status", "ms", "detail"]]
    for name, check in checks.items():
        rows.append(
            [
                name,
                str(check.get("status")),
                f"{check.get('duration_ms', 0):.1f}",
                str(check.get("error") or ""),
            ]
        )
    emit(
        args.json,
        {"url": service.url, "healthy": healthy, "status": status, "health": full},
        [f"{service.url}: {_VERDICT.get(status, 'UNHEALTHY')}", *table(rows)],
    )
    return EXIT_OK if healthy else EXIT_FAILED


# -- ef cache ------------------------------------------------------------------------------------


def cache_stats(args: argparse.Namespace) -> int:
    with Service(args.url, args.timeout) as service:
        stats = service.request("GET", "/api/admin/cache")
    emit(args.json, stats, [f"{key}: {value}" for key, value in stats.items()])
    return EXIT_OK


def cache_purge(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CliError("purging deletes every cached audio file: add --yes", EXIT_REFUSED)
    with Service(args.url, args.timeout) as service:
        result = service.request("DELETE", "/api/admin/cache")
    emit(args.json, result, [f"purged {result['removed']} cache entries"])
    return EXIT_OK


# -- ef jobs -------------------------------------------------------------------------------------


def _job_row(job: dict[str, Any]) -> list[str]:
    return [
        str(job["id"]),
        str(job["status"]),
        str(job.get("client", "")),
        str(job["attempts"]),
        str(job["created_at"])[:19],
        str(job.get("error") or "")[:60],
    ]


def jobs_list(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit, "offset": args.offset}
    if args.status:
        params["status"] = args.status
    with Service(args.url, args.timeout) as service:
        page = service.request("GET", "/api/admin/jobs", params=params)
    rows = [["id", "status", "client", "attempts", "created", "error"]]
    rows += [_job_row(job) for job in page["data"]]
    emit(args.json, page, [*table(rows), f"{len(page['data'])} of {page['count']} jobs"])
    return EXIT_OK


def jobs_show(args: argparse.Namespace) -> int:
    with Service(args.url, args.timeout) as service:
        job = service.request("GET", f"/api/admin/jobs/{args.job_id}")
    emit(args.json, job, [f"{key}: {value}" for key, value in job.items()])
    return EXIT_OK


def jobs_retry(args: argparse.Namespace) -> int:
    with Service(args.url, args.timeout) as service:
        job = service.request("POST", f"/api/admin/jobs/{args.job_id}/retry")
    emit(args.json, job, [f"job {job['id']} is {job['status']} again"])
    return EXIT_OK


def jobs_cancel(args: argparse.Namespace) -> int:
    with Service(args.url, args.timeout) as service:
        job = service.request("DELETE", f"/api/admin/jobs/{args.job_id}")
    emit(args.json, job, [f"job {job['id']} is {job['status']}"])
    return EXIT_OK
