"""Values move as they should on the live ``/metrics`` of a real backend and real Piper ef_tts.

A cache miss then a hit, failures by reason (an engine that refuses the text, an engine that is
too slow), the queue depth while jobs wait behind a single worker, the database size after
writes, and bounded cardinality whatever paths clients request.
"""

from __future__ import annotations

import os
import random
import string
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backend.api.helpers import long_text, unique_text, wait_job
from tests.backend.conftest import BackendFactory
from tests.backend.observability.support import samples, value
from tests.utils.procs import Server, start_ef_tts

pytestmark = [pytest.mark.server, pytest.mark.slow]


def scrape(server: Server) -> str:
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("obs-backend")


@pytest.fixture(scope="module")
def one_worker(backend_factory: BackendFactory, data_dir: Path) -> Server:
    """A backend with one worker, so that further jobs have to wait in the queue."""
    return backend_factory(data_dir, EF_TTS_CONCURRENCY="1")


@pytest.fixture(scope="module")
def short_engine(session_tmp: Path) -> Iterator[Server]:
    """A real ef_tts that refuses texts over 250 characters (a 4xx the backend cannot retry)."""
    server = start_ef_tts(
        "ef_tts-short",
        session_tmp / "logs",
        {"EF_TTS_ENGINE": "piper", "EF_TTS_MAX_TEXT_CHARS": "250"},
    )
    try:
        yield server.wait_ready("/health", timeout=120)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def strict_backend(backend_factory: BackendFactory, short_engine: Server) -> Server:
    """One attempt per job and 0.4 s per engine call: failures show at once, by reason."""
    return backend_factory(
        EF_TTS_URL=short_engine.url,
        EF_TTS_TIMEOUT_S="0.4",
        EF_JOB_MAX_ATTEMPTS="1",
        EF_SYNC_TIMEOUT_S="60",
    )


def sentence(chars: int) -> str:
    """One sentence of about ``chars`` characters with no break the splitter could use."""
    words = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append("".join(random.choices(string.ascii_lowercase, k=random.randint(3, 8))))
    return ("Here " + " ".join(words))[:chars].rstrip() + "."


def test_cache_miss_then_hit(one_worker: Server) -> None:
    text = unique_text("Metrics see a miss and then a hit")
    before = scrape(one_worker)
    with httpx.Client(base_url=one_worker.url, timeout=60) as client:
        first = client.post("/api/v1/speech", json={"text": text})
        second = client.post("/api/v1/speech", json={"text": text})
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert (first.headers["x-ef-cache"], second.headers["x-ef-cache"]) == ("miss", "hit")
    after = scrape(one_worker)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ef_tts_request_duration_seconds_count", cache="miss") == 1
    assert delta("ef_tts_request_duration_seconds_count", cache="hit") == 1
    assert delta("ef_audio_cache_requests_total", result="hit") >= 1
    assert delta("ef_audio_cache_requests_total", result="miss") >= 1
    assert delta("ef_tts_jobs_total", outcome="succeeded") == 1
    assert delta("ef_tts_audio_seconds_total") > 0.5
    synth = [
        key
        for key in samples(after)
        if key[0] == "ef_tts_synthesis_duration_seconds_count"
        and dict(key[1]).get("engine") == "piper"
    ]
    assert synth, "the engine call is timed by engine and voice"
    route = {"method": "POST", "route": "/api/v1/speech", "status": "200"}
    assert delta("ef_http_requests_total", **route) == 2


def test_queue_depth_while_jobs_wait(one_worker: Server) -> None:
    before = scrape(one_worker)
    with httpx.Client(base_url=one_worker.url, timeout=30) as client:
        ids = []
        for _ in range(4):
            response = client.post("/api/v1/jobs", json={"text": long_text(4)})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        depths = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = scrape(one_worker)
            depths.append(value(text, "ef_tts_queue_depth"))
            if value(text, "ef_tts_jobs_in_progress") == 1 and depths[-1] >= 2:
                break
            time.sleep(0.05)
        assert max(depths) >= 2, f"with one worker, the other jobs wait: saw depths {depths}"
        assert value(text, "ef_tts_queue_oldest_age_seconds") >= 0
        for job_id in ids:
            wait_job(client, job_id, timeout=180)
    after = scrape(one_worker)
    assert value(after, "ef_tts_queue_depth") == 0
    assert value(after, "ef_tts_queue_oldest_age_seconds") == 0
    assert value(after, "ef_tts_jobs_in_progress") == 0
    assert (
        value(after, "ef_tts_queue_wait_seconds_count")
        - value(before, "ef_tts_queue_wait_seconds_count")
        == 4
    )
    assert value(after, "ef_tts_queue_wait_seconds_sum") > value(
        before, "ef_tts_queue_wait_seconds_sum"
    ), "jobs behind a busy worker waited"


def test_database_size_after_writes(one_worker: Server, data_dir: Path) -> None:
    before = value(scrape(one_worker), "ef_db_size_bytes")
    with httpx.Client(base_url=one_worker.url, timeout=30) as client:
        for i in range(30):
            response = client.post(
                "/api/v1/jobs", json={"text": f"Row {i}. " + unique_text("Grow the database")}
            )
            assert response.status_code == 202, response.text
            client.delete(f"/api/v1/jobs/{response.json()['id']}")
    after = value(scrape(one_worker), "ef_db_size_bytes")
    assert after > before
    db = data_dir / "db.sqlite"
    wal = Path(f"{db}-wal")
    on_disk = os.stat(db).st_size + (os.stat(wal).st_size if wal.exists() else 0)
    assert abs(after - on_disk) <= 64 * 1024, "file plus WAL, as read at scrape time"
    assert value(scrape(one_worker), "ef_db_up") == 1


def test_failures_by_reason(strict_backend: Server) -> None:
    before = scrape(strict_backend)
    with httpx.Client(base_url=strict_backend.url, timeout=60) as client:
        refused = client.post("/api/v1/jobs", json={"text": sentence(280)})
        slow = client.post("/api/v1/jobs", json={"text": sentence(240)})
        assert refused.status_code == 202 and slow.status_code == 202
        refused_job = wait_job(client, refused.json()["id"], until=("failed",))
        slow_job = wait_job(client, slow.json()["id"], until=("failed",))
    assert refused_job["error_reason"] == "rejected", refused_job
    assert slow_job["error_reason"] == "timeout", slow_job
    after = scrape(strict_backend)
    for reason in ("rejected", "timeout"):
        assert (
            value(after, "ef_tts_failures_total", reason=reason)
            - value(before, "ef_tts_failures_total", reason=reason)
            == 1
        ), reason
    for reason in ("unreachable", "engine_error"):
        assert ("ef_tts_failures_total", frozenset({("reason", reason)})) in samples(after), (
            f"{reason} is exported (as 0) before it ever happens"
        )
    # Text the engine refused is the client's fault: its own outcome, outside the SLO.
    for outcome in ("failed", "rejected"):
        assert (
            value(after, "ef_tts_jobs_total", outcome=outcome)
            - value(before, "ef_tts_jobs_total", outcome=outcome)
            == 1
        ), outcome


def test_unknown_paths_add_no_series(one_worker: Server) -> None:
    rng = random.Random(4)

    def random_path() -> str:
        depth = rng.randint(1, 4)
        parts = [
            "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 12)))
            for _ in range(depth)
        ]
        prefix = rng.choice(["", "api/v1/", "api/v1/jobs/", "v1/", "admin/", "static/"])
        return "/" + prefix + "/".join(parts)

    with httpx.Client(base_url=one_worker.url, timeout=10) as client:
        for _ in range(10):  # every label value the storm can produce exists from here on
            client.get(random_path())
            client.request("PROPFIND", random_path())
        series_before = set(samples(scrape(one_worker)))
        statuses = set()
        for i in range(1000):
            method = "PROPFIND" if i % 50 == 0 else "GET"
            statuses.add(client.request(method, random_path()).status_code)
        series_after = set(samples(scrape(one_worker)))
    assert statuses <= {404, 405}, statuses
    added = sorted(name for name, _ in series_after - series_before)
    assert not added, f"1,000 unknown paths created series: {added[:10]}"


def test_prometheus_gets_the_classic_format_when_there_are_no_exemplars(
    one_worker: Server,
) -> None:
    """Tracing off: no exemplar to carry, so the OpenMetrics that Prometheus prefers is not
    worth its encoding cost; the classic format it also accepts holds the same series."""
    prometheus_accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    response = httpx.get(
        one_worker.url + "/metrics", headers={"Accept": prometheus_accept}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in response.text
    assert "ef_http_requests_total{" in response.text
