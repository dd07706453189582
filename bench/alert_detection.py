"""Alert detection time: from the backend stopping to the EFBackendDown email at the SMTP server.

The alert path of the e2e alerting test (tests/monitoring/alerting_stack.py): a real ef_backend
and Piper ef_tts, the Debian Prometheus and Alertmanager with the versioned rules and routing,
rewritten in a copy only for one machine and with the test's shortened intervals (scrape and
evaluation 1 s, EFBackendDown ``for: 2s``, group_wait 1 s), and an aiosmtpd SMTP server that
timestamps each email as it arrives. Each run waits until the backend's target is up and
EFBackendDown is inactive, kills the backend (SIGKILL: a crash) and times the FIRING email that
names it (the alert is parsed from the subject). The alert's ``startsAt`` (when Prometheus fired
it) splits each time into "killed -> fired" (the failed scrape, the evaluation that saw it,
``for:``) and "fired -> email" (group_wait, delivery).

Every run gets a new alerting stack (the Piper engine stays): each is a first outage. A second
outage of the same backend within 15 minutes of the first one's end is not: Prometheus keeps
re-sending the resolved alert for 15 minutes, so Alertmanager keeps its group, and the new
FIRING email goes out at that group's next group_interval tick (0 to group_interval after it
fires) instead of after group_wait.

Beside it, the time computed with docs/performance.md's formula, from the intervals read out
of the configuration that ran and out of the versioned production files: the first failed
scrape comes up to one scrape interval after the stop, the rule sees it at the next evaluation
(up to one evaluation interval), the alert fires after ``for:`` rounded up to an evaluation,
and Alertmanager waits group_wait: best ``for + group_wait``, worst
``scrape + evaluation + for + evaluation + group_wait`` (SMTP delivery not included).

    .venv/bin/python bench/alert_detection.py              # three runs (what `make bench` runs)
    .venv/bin/python bench/alert_detection.py --runs 10 --json alert.json
"""

from __future__ import annotations

import re
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import bench_parser, stack, workdir, write_json
from monitoring.mixin import config as mixin
from tests.monitoring.alerting_stack import AlertingStack, alerting_stack, is_backend_down_email
from tests.monitoring.support import (
    ALERTMANAGER_YML,
    ALERTS_DIR,
    PROMETHEUS_YML,
    load_yaml,
    query,
    text_body,
    wait_for,
)

ALERT = "EFBackendDown"
QUIET = {"EF_LOG_LEVEL": "WARNING"}
SUBJECT = re.compile(r"\[(FIRING|RESOLVED)(?::\d+)?\] (\w+)(?: \((\w+)\))?")
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
MATCHER = re.compile(r'^\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


# ----------------------------------------------------------------------- computed from config


@dataclass(frozen=True)
class Intervals:
    """What the detection time is made of, in seconds."""

    scrape: float
    evaluation: float
    hold: float  # the alert's ``for:``
    group_wait: float

    @property
    def best(self) -> float:
        return self.hold + self.group_wait

    @property
    def worst(self) -> float:
        return self.fired_worst + self.group_wait

    @property
    def fired_worst(self) -> float:
        """Latest the alert fires after the stop (the earliest: ``for:``)."""
        return self.scrape + self.evaluation + self.hold + self.evaluation


def seconds(duration: str) -> float:
    """A Prometheus / Alertmanager duration ("15s", "1m30s") in seconds."""
    parts = DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * UNITS[u] for n, u in parts)


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for matcher in matchers:
        found = MATCHER.match(matcher)
        if found is None:
            raise ValueError(f"matcher not understood: {matcher!r}")
        name, op, value = found.groups()
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def _group_wait(route: dict[str, Any], labels: dict[str, str], inherited: str = "30s") -> str:
    """group_wait of the route the email goes out by: the first matching child route that does
    not ``continue`` (children inherit what they do not set)."""
    wait = str(route.get("group_wait", inherited))
    for child in route.get("routes", []):
        if _matches(child.get("matchers", []), labels) and not child.get("continue", False):
            return _group_wait(child, labels, wait)
    return wait


def intervals(
    prometheus: dict[str, Any], rules_dir: Path, alertmanager: dict[str, Any]
) -> Intervals:
    """The backend job's scrape interval, the alert's evaluation interval and ``for:``, and the
    group_wait of its route, read from one configuration."""
    glob = prometheus["global"]
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == mixin.JOB_BACKEND)
    for path in sorted(rules_dir.glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == ALERT:
                    labels = {"alertname": ALERT, "job": mixin.JOB_BACKEND, **rule["labels"]}
                    return Intervals(
                        scrape=seconds(job.get("scrape_interval", glob["scrape_interval"])),
                        evaluation=seconds(group.get("interval", glob["evaluation_interval"])),
                        hold=seconds(rule.get("for", "0s")),
                        group_wait=seconds(_group_wait(alertmanager["route"], labels)),
                    )
    raise LookupError(f"no {ALERT} rule in {rules_dir}")


def production() -> Intervals:
    return intervals(load_yaml(PROMETHEUS_YML), ALERTS_DIR, load_yaml(ALERTMANAGER_YML))


# ------------------------------------------------------------------------------- measured


@dataclass
class Run:
    seconds: float  # backend killed -> FIRING email at the SMTP server
    fired: float  # backend killed -> the alert firing in Prometheus (its startsAt)
    alert: str  # parsed from the email's subject
    severity: str
    subject: str
    other_emails: list[str]  # subjects of any other email that arrived meanwhile


def _ready_for_a_run(running: AlertingStack) -> None:
    instance = running.backend_instance

    def up() -> bool:
        samples = query(running.prometheus, f'up{{instance="{instance}"}}')
        return [s["value"][1] for s in samples] == ["1"]

    def inactive() -> bool:
        alerts = httpx.get(f"{running.prometheus.url}/api/v1/alerts", timeout=10).json()
        return not [a for a in alerts["data"]["alerts"] if a["labels"]["alertname"] == ALERT]

    wait_for(up, timeout=120, what="the backend's target up")
    wait_for(inactive, timeout=120, what=f"{ALERT} inactive")


def _fired_at(running: AlertingStack, instance: str) -> float:
    """The alert's startsAt in Alertmanager (Prometheus sends the time it fired), Unix time."""
    alerts = httpx.get(
        f"{running.alertmanager.url}/api/v2/alerts",
        params={"filter": [f'alertname="{ALERT}"', f'instance="{instance}"']},
        timeout=10,
    ).json()
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", alerts[0]["startsAt"]).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()


def measure(running: AlertingStack, *, timeout: float) -> Run:
    instance = running.backend_instance
    before = len(running.smtp.timed())
    running.backend.kill(signal.SIGKILL)
    stopped, stopped_wall = time.monotonic(), time.time()

    def firing() -> tuple[float, EmailMessage] | None:
        return next(
            (
                (at, m)
                for at, m in running.smtp.timed()[before:]
                if is_backend_down_email(m, "FIRING", instance)
            ),
            None,
        )

    arrived, email = wait_for(firing, timeout=timeout, what=f"the {ALERT} email", interval=0.05)
    subject = str(email["Subject"])
    parsed = SUBJECT.search(subject)
    if parsed is None or instance not in text_body(email):
        raise RuntimeError(f"unexpected email: {subject}")
    others = [str(m["Subject"]) for _, m in running.smtp.timed()[before:] if m is not email]
    return Run(
        seconds=arrived - stopped,
        fired=_fired_at(running, instance) - stopped_wall,
        alert=parsed.group(2),
        severity=parsed.group(3) or "",
        subject=subject,
        other_emails=others,
    )


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f} s"


def _s(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 or value == int(value) else f"{value:.1f} s"


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60, help="per run, for the email")
    args = parser.parse_args()

    runs: list[Run] = []
    with workdir(args.keep) as root, stack(root) as engines:
        tts = engines.engine()
        for n in range(args.runs):
            # A new alerting stack per run: see the module docstring.
            with alerting_stack(root / f"run-{n + 1}", tts, backend_env=QUIET) as running:
                test = intervals(
                    running.prometheus_config, running.rules_dir, running.alertmanager_config
                )
                _ready_for_a_run(running)
                runs.append(measure(running, timeout=args.timeout))
            print(f"run {n + 1}: {runs[-1].seconds:.2f} s ({runs[-1].subject})", flush=True)
    prod = production()
    total = _spread([r.seconds for r in runs])
    fired = _spread([r.fired for r in runs])
    notified = _spread([r.seconds - r.fired for r in runs])

    print("\n| intervals | scrape | evaluation | `for` | group_wait | computed | measured |")
    print("|---|---|---|---|---|---|---|")
    for name, i, measured in [
        ("production (versioned files)", prod, "not run"),
        ("shortened (e2e test's)", test, f"{total} (n = {len(runs)})"),
    ]:
        print(
            f"| {name} | {_s(i.scrape)} | {_s(i.evaluation)} | {_s(i.hold)} | {_s(i.group_wait)} "
            f"| {_s(i.best)} - {_s(i.worst)} | {measured} |"
        )
    print("\n| shortened intervals, stage | computed | measured min / median / max |")
    print("|---|---|---|")
    print(f"| killed -> fired | {_s(test.hold)} - {_s(test.fired_worst)} | {fired} |")
    print(f"| fired -> email at the SMTP server | {_s(test.group_wait)} + delivery | {notified} |")
    print(f"| killed -> email | {_s(test.best)} - {_s(test.worst)} | {total} |")
    print(f"\nEmails timed: {sorted({f'{r.alert} ({r.severity})' for r in runs})}")
    write_json(
        args.json,
        {
            "runs": [asdict(r) for r in runs],
            "measured_s": {
                "min": min(r.seconds for r in runs),
                "median": statistics.median(r.seconds for r in runs),
                "max": max(r.seconds for r in runs),
            },
            "computed_s": {
                name: {**asdict(i), "best": i.best, "worst": i.worst}
                for name, i in {"shortened": test, "production": prod}.items()
            },
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
