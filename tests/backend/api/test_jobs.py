"""Jobs end to end: queue, poll, fetch audio, list, cancel; the states that refuse each action."""

from __future__ import annotations

import httpx
import pytest

from tests.backend.api.helpers import (
    client_for,
    decode,
    error_of,
    long_text,
    unique_text,
    wait_job,
)
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def client(backend: Server) -> httpx.Client:
    with client_for(backend) as c:
        yield c


@pytest.fixture(scope="module")
def single_worker(backend_factory: BackendFactory) -> Server:
    """One worker, so that a long job keeps later ones queued; synchronous calls wait 1 s."""
    return backend_factory(EF_TTS_CONCURRENCY="1", EF_SYNC_TIMEOUT_S="1")


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/admin/jobs/failed", "/api/admin/jobs"])
def test_a_huge_offset_is_refused_not_a_500(client: httpx.Client, path: str) -> None:
    response = client.get(path, params={"offset": "9223372036854775808"})
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "invalid_input"
    assert "offset" in str(error_of(response)["message"])


def test_job_lifecycle(client: httpx.Client) -> None:
    text = unique_text("A job that is queued and then fetched")
    created = client.post("/api/v1/jobs", json={"text": text, "format": "mp3"})
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["links"] == {
        "self": f"/api/v1/jobs/{job['id']}",
        "audio": f"/api/v1/jobs/{job['id']}/audio",
    }
    assert job["status"] in ("queued", "running", "succeeded")
    assert job["text_chars"] == len(text)
    assert "text" not in job

    done = wait_job(client, job["id"])
    assert done["sentences_done"] == done["sentences_total"] >= 1
    assert done["finished_at"] is not None

    audio = client.get(job["links"]["audio"])
    assert audio.status_code == 200, audio.text
    assert audio.headers["content-type"] == "audio/mpeg"
    assert decode(audio.content, "mp3").duration_s > 0.5

    # The same words through the synchronous API are now a cache hit.
    again = client.post("/api/v1/speech", json={"text": text, "format": "mp3"})
    assert again.headers["x-ef-cache"] == "hit"
    assert again.content == audio.content


def test_job_audio_is_sent_from_its_file_with_length_etag_and_ranges(
    client: httpx.Client,
) -> None:
    """Cached audio is streamed from disk: Content-Length and ETag from the file; a browser's
    ``Range`` gets 206 with that slice."""
    text = unique_text("Audio that a browser fetches in ranges")
    job = client.post("/api/v1/jobs", json={"text": text, "format": "wav"}).json()
    wait_job(client, job["id"])
    url = f"/api/v1/jobs/{job['id']}/audio"
    whole = client.get(url)
    assert whole.status_code == 200, whole.text
    size = len(whole.content)
    assert whole.headers["content-length"] == str(size) and size > 1000
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["etag"]
    assert whole.headers["content-disposition"] == 'inline; filename="speech.wav"'
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 0-99/{size}"
    assert part.content == whole.content[:100]
    outside = client.get(url, headers={"Range": f"bytes={size}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{size}"
    malformed = client.get(url, headers={"Range": "pages=1-2"})
    assert malformed.status_code == 400 and malformed.text
    assert malformed.headers["content-type"].startswith("text/plain")  # as documented
    again = client.post("/api/v1/speech", json={"text": text, "format": "wav"})
    assert again.headers["x-ef-cache"] == "hit"
    assert again.headers["content-length"] == str(size) and again.content == whole.content


def test_list_jobs_is_paginated_and_filtered(client: httpx.Client) -> None:
    ids = [
        client.post("/api/v1/jobs", json={"text": unique_text("Listed job")}).json()["id"]
        for _ in range(3)
    ]
    for job_id in ids:
        wait_job(client, job_id)
    page = client.get("/api/v1/jobs", params={"limit": 2, "offset": 0}).json()
    assert page["limit"] == 2 and page["offset"] == 0
    assert len(page["data"]) == 2
    assert page["count"] >= 3
    # Newest first: the last job created leads the list.
    assert page["data"][0]["id"] == ids[-1]
    nxt = client.get("/api/v1/jobs", params={"limit": 2, "offset": 1}).json()
    assert nxt["data"][0]["id"] == page["data"][1]["id"]
    succeeded = client.get("/api/v1/jobs", params={"status": "succeeded", "limit": 200}).json()
    assert {j["status"] for j in succeeded["data"]} == {"succeeded"}
    assert set(ids) <= {j["id"] for j in succeeded["data"]}


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "done"}, "status"),
    ],
)
def test_list_jobs_bad_query(client: httpx.Client, params: dict[str, object], says: str) -> None:
    response = client.get("/api/v1/jobs", params=params)
    assert response.status_code == 422
    assert says in str(error_of(response)["message"])


def test_unknown_and_malformed_job_ids(client: httpx.Client) -> None:
    for path in ("/api/v1/jobs/{}", "/api/v1/jobs/{}/audio"):
        missing = client.get(path.format("0" * 32))
        assert missing.status_code == 404
        assert error_of(missing)["code"] == "job_not_found"
    deleted = client.delete("/api/v1/jobs/" + "0" * 32)
    assert deleted.status_code == 404
    malformed = client.get("/api/v1/jobs/not%20an%20id")
    assert malformed.status_code == 422
    assert "job_id" in str(error_of(malformed)["message"])


def test_bad_job_body(client: httpx.Client) -> None:
    before = client.get("/api/v1/jobs", params={"limit": 1}).json()["count"]
    for body in ({"text": ""}, {"text": "Hi.", "speed": 9}, {"text": "Hi.", "stream": True}):
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == 422, response.text
    voice = client.post("/api/v1/jobs", json={"text": "Hi.", "voice": "nobody"})
    assert voice.status_code == 400
    assert error_of(voice)["code"] == "unknown_voice"
    assert client.get("/api/v1/jobs", params={"limit": 1}).json()["count"] == before


def test_cancel_only_a_queued_job(single_worker: Server) -> None:
    with client_for(single_worker) as client:
        busy = client.post("/api/v1/jobs", json={"text": long_text(12)}).json()
        waiting = client.post("/api/v1/jobs", json={"text": unique_text("Waiting in line")}).json()
        wait_job(client, busy["id"], until=("running",))
        assert client.get(f"/api/v1/jobs/{waiting['id']}").json()["status"] == "queued"

        early = client.get(f"/api/v1/jobs/{waiting['id']}/audio")
        assert early.status_code == 409
        assert "queued" in str(error_of(early)["message"])

        running = client.delete(f"/api/v1/jobs/{busy['id']}")
        assert running.status_code == 409
        assert error_of(running)["code"] == "job_conflict"

        cancelled = client.delete(f"/api/v1/jobs/{waiting['id']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        again = client.delete(f"/api/v1/jobs/{waiting['id']}")
        assert again.status_code == 409

        wait_job(client, busy["id"])
        # The cancelled job stays cancelled: the worker never picked it up.
        assert client.get(f"/api/v1/jobs/{waiting['id']}").json()["status"] == "cancelled"
        gone = client.get(f"/api/v1/jobs/{waiting['id']}/audio")
        assert gone.status_code == 409
        finished = client.delete(f"/api/v1/jobs/{busy['id']}")
        assert finished.status_code == 409


def test_sync_timeout_names_the_job_to_poll(single_worker: Server) -> None:
    with client_for(single_worker) as client:
        text = long_text(10)
        slow = client.post("/api/v1/speech", json={"text": text})
        assert slow.status_code == 504, slow.text
        assert int(slow.headers["retry-after"]) >= 1
        error = error_of(slow)
        assert error["code"] == "sync_timeout"
        job_id = error["job_id"]
        assert error["links"] == {
            "self": f"/api/v1/jobs/{job_id}",
            "audio": f"/api/v1/jobs/{job_id}/audio",
        }
        # The work was not lost: the job finishes and the same request is then a cache hit.
        wait_job(client, str(job_id))
        audio = client.get(f"/api/v1/jobs/{job_id}/audio")
        again = client.post("/api/v1/speech", json={"text": text})
        assert again.status_code == 200
        assert again.headers["x-ef-cache"] == "hit"
        assert again.content == audio.content
