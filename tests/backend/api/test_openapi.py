"""The OpenAPI document describes every operation: tags, summary, success and error responses."""

from __future__ import annotations

import httpx
import pytest

from tests.utils.procs import Server

pytestmark = pytest.mark.server

#: What RequestGuards answers on every route before it runs: a foreign Host, a body too large.
EVERYWHERE = {"400", "413", "500"}
GUARDED = {
    # prefix: errors every operation under it must document (plus 422 where it takes input)
    "/api/v1/speech": {"401", "429", "503"},
    "/api/v1/jobs": {"401", "429"},
    "/api/v1/voices": {"429", "503"},
    "/v1/": {"401", "429"},
    "/api/admin": {"401", "403", "429"},
    "/health": set(),
}
#: Answers without an error body: a Range outside the audio.
BODYLESS_ERRORS = {"416"}
ERROR_SCHEMAS = {"ErrorResponse", "OpenAIErrorResponse", "HealthPublic", "EngineHealthPublic"}


@pytest.fixture(scope="module")
def spec(backend: Server) -> dict[str, object]:
    response = httpx.get(backend.url + "/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(spec: dict[str, object]) -> list[tuple[str, str, dict[str, object]]]:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    return [
        (path, method, op)
        for path, item in paths.items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_route_is_in_the_document(spec: dict[str, object]) -> None:
    ops = {(path, method) for path, method, _ in _operations(spec)}
    expected = {
        ("/api/v1/speech", "post"),
        ("/api/v1/jobs", "post"),
        ("/api/v1/jobs", "get"),
        ("/api/v1/jobs/{job_id}", "get"),
        ("/api/v1/jobs/{job_id}", "delete"),
        ("/api/v1/jobs/{job_id}/audio", "get"),
        ("/api/v1/voices", "get"),
        ("/v1/audio/speech", "post"),
        ("/v1/models", "get"),
        ("/api/admin/queue", "get"),
        ("/api/admin/jobs/failed", "get"),
        ("/api/admin/jobs", "get"),
        ("/api/admin/jobs/{job_id}", "get"),
        ("/api/admin/jobs/{job_id}", "delete"),
        ("/api/admin/jobs/{job_id}/retry", "post"),
        ("/api/admin/cache", "get"),
        ("/api/admin/cache", "delete"),
        ("/health", "get"),
        ("/health/ready", "get"),
        ("/health/live", "get"),
        ("/health/tts", "get"),
    }
    assert expected <= ops, expected - ops


def test_every_operation_documents_its_errors(spec: dict[str, object]) -> None:
    problems: list[str] = []
    for path, method, op in _operations(spec):
        where = f"{method.upper()} {path}"
        if not op.get("summary"):
            problems.append(f"{where}: no summary")
        if not op.get("tags"):
            problems.append(f"{where}: no tag")
        responses = op["responses"]
        assert isinstance(responses, dict)
        ok = [code for code in responses if code.startswith("2")]
        if not ok or not responses[ok[0]].get("content"):
            problems.append(f"{where}: no documented success body")
        takes_input = bool(op.get("parameters") or op.get("requestBody"))
        required = EVERYWHERE | ({"422"} if takes_input else set())
        for prefix, guarded in GUARDED.items():
            if path.startswith(prefix):
                required |= guarded
        missing = required - set(responses)
        if missing:
            problems.append(f"{where}: errors {sorted(missing)} not documented")
        for code, response in responses.items():
            if code[0] not in "45" or code in BODYLESS_ERRORS:
                continue
            refs = str(response.get("content", {}))
            if not any(name in refs for name in ERROR_SCHEMAS):
                problems.append(f"{where}: {code} has no error body schema")
            if not response.get("description"):
                problems.append(f"{where}: {code} has no description")
            if "HTTPValidationError" in refs:
                problems.append(f"{where}: {code} documents FastAPI's default body, not ours")
            json_schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            openai_shape = json_schema.get("$ref") == "#/components/schemas/OpenAIErrorResponse"
            if json_schema and openai_shape != path.startswith("/v1/"):
                shape = "OpenAI's" if openai_shape else "the native"
                problems.append(f"{where}: {code} documents {shape} error shape")
    assert not problems, "\n".join(problems)


def test_request_bodies_are_described(spec: dict[str, object]) -> None:
    schemas = spec["components"]["schemas"]  # type: ignore[index]
    speech = schemas["SpeechStreamBody"]
    speed = speech["properties"]["speed"]
    assert speed["exclusiveMinimum"] == 0  # the operator's bounds are checked at run time
    assert "EF_MIN_SPEED" in speed["description"] and "EF_MAX_SPEED" in speed["description"]
    assert "AudioFormat" in str(speech["properties"]["format"])
    openai = schemas["OpenAISpeechBody"]
    assert openai["required"] == ["input"]
    assert "mp3" in str(schemas["AudioFormat"]["enum"])


def test_the_job_audio_documents_range_answers(spec: dict[str, object]) -> None:
    """Browsers' audio players ask for parts of a GET's audio: 206, 416, a malformed Range 400."""
    responses = spec["paths"]["/api/v1/jobs/{job_id}/audio"]["get"]["responses"]  # type: ignore[index]
    assert "Content-Range" in responses["206"]["headers"]
    assert "audio/wav" in responses["206"]["content"]
    assert "Content-Range" in responses["416"]["headers"]
    assert "text/plain" in responses["400"]["content"]
    assert "Range" in responses["400"]["description"]
    assert "EF_ALLOWED_HOSTS" in responses["400"]["description"]
