"""The services of a `Runtime` end to end against the real Piper ef_tts: cache, queue, formats,
streams."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from ef_backend.core.errors import (
    InvalidInput,
    JobConflict,
    QueueFull,
    SyncTimeout,
    UnknownVoice,
)
from ef_backend.models import AudioFormat, Job, JobStatus
from ef_backend.services import audio
from ef_backend.services.runtime import Runtime
from ef_backend.services.speech import SpeechRequest, check_limits
from sqlmodel import col, func, select

from tests.backend.services.conftest import ServiceFactory, SettingsFactory
from tests.backend.services.helpers import ffprobe, metric, synth_calls, wait_until
from tests.utils.procs import Server, free_port

pytestmark = pytest.mark.server


@pytest.fixture
async def service(service_factory: ServiceFactory, piper_tts: Server) -> Runtime:
    return await service_factory(tts_url=piper_tts.url)


async def test_a_miss_queues_a_job_and_the_repeat_is_a_cache_hit(service: Runtime) -> None:
    request = SpeechRequest(text="The kettle has boiled.  Tea is ready in the kitchen.")
    before = {
        "miss": metric("ef_tts_request_duration_seconds_count", cache="miss"),
        "hit": metric("ef_tts_request_duration_seconds_count", cache="hit"),
        "cache_miss": metric("ef_audio_cache_requests_total", result="miss"),
        "cache_hit": metric("ef_audio_cache_requests_total", result="hit"),
        "succeeded": metric("ef_tts_jobs_total", outcome="succeeded"),
        "audio": metric("ef_tts_audio_seconds_total"),
        "wait": metric("ef_tts_queue_wait_seconds_count"),
    }
    calls = synth_calls()
    first = await service.speech.synthesize(request)
    assert not first.cache_hit and first.job_id is not None
    assert first.media_type == "audio/wav"
    pcm = audio.read_wav(first.data)
    assert 1.0 < pcm.duration_s < 15
    job = service.jobs.get(first.job_id)
    assert job.status is JobStatus.succeeded
    assert job.sentences_total == job.sentences_done == 2
    assert job.text == "The kettle has boiled. Tea is ready in the kitchen."  # normalised
    assert job.audio_seconds == pytest.approx(pcm.duration_s, abs=0.01)
    assert synth_calls() == calls + 2  # one engine call per sentence

    second = await service.speech.synthesize(request)
    assert second.cache_hit and second.job_id is None
    assert second.data == first.data and second.cache_key == first.cache_key
    assert synth_calls() == calls + 2
    assert metric("ef_tts_request_duration_seconds_count", cache="miss") == before["miss"] + 1
    assert metric("ef_tts_request_duration_seconds_count", cache="hit") == before["hit"] + 1
    assert metric("ef_audio_cache_requests_total", result="miss") == before["cache_miss"] + 1
    assert metric("ef_audio_cache_requests_total", result="hit") == before["cache_hit"] + 1
    assert metric("ef_tts_jobs_total", outcome="succeeded") == before["succeeded"] + 1
    assert metric("ef_tts_queue_wait_seconds_count") == before["wait"] + 1
    assert metric("ef_tts_audio_seconds_total") > before["audio"] + 1.0


async def test_every_format_is_encoded_from_the_same_cached_sentences(
    service: Runtime, tmp_path: Path
) -> None:
    text = "Formats are fun. Each one is encoded for real."
    wav = await service.speech.synthesize(SpeechRequest(text=text))
    duration = audio.read_wav(wav.data).duration_s
    calls = synth_calls()
    expected = {
        AudioFormat.mp3: ("mp3", "audio/mpeg"),
        AudioFormat.opus: ("opus", "audio/ogg"),
        AudioFormat.flac: ("flac", "audio/flac"),
        AudioFormat.aac: ("aac", "audio/aac"),
    }
    for fmt, (codec, media_type) in expected.items():
        result = await service.speech.synthesize(SpeechRequest(text=text, format=fmt))
        assert not result.cache_hit and result.media_type == media_type
        path = tmp_path / f"probe.{fmt.value}"
        path.write_bytes(result.data)
        info = ffprobe(path)
        assert info["streams"][0]["codec_name"] == codec  # type: ignore[index]
        assert float(info["format"]["duration"]) == pytest.approx(duration, abs=0.15)  # type: ignore[index]
    pcm = await service.speech.synthesize(SpeechRequest(text=text, format=AudioFormat.pcm))
    assert pcm.media_type == "audio/L16"
    assert len(pcm.data) / 2 / audio.PCM_SAMPLE_RATE == pytest.approx(duration, abs=0.01)
    assert synth_calls() == calls, "every sentence came from the sentence cache"


async def test_a_repeated_sentence_is_not_synthesised_again(service: Runtime) -> None:
    await service.speech.synthesize(SpeechRequest(text="Alpha is first. Bravo is second."))
    calls = synth_calls()
    result = await service.speech.synthesize(
        SpeechRequest(text="Bravo is second. Charlie is third.")
    )
    assert not result.cache_hit
    assert synth_calls() == calls + 1


async def test_twenty_identical_concurrent_requests_make_one_synthesis(
    service: Runtime,
) -> None:
    request = SpeechRequest(text="Twenty people asked at once. One voice answered them all.")
    calls = synth_calls()
    results = await asyncio.gather(*(service.speech.synthesize(request) for _ in range(20)))
    assert len({r.data for r in results}) == 1
    job_ids = {r.job_id for r in results if r.job_id is not None}
    assert len(job_ids) == 1
    assert synth_calls() == calls + 2
    with service.sessions() as session:
        jobs = session.exec(
            select(func.count()).select_from(Job).where(col(Job.cache_key) == results[0].cache_key)
        ).one()
    assert jobs == 1


async def test_speed_shortens_the_audio(service: Runtime) -> None:
    """1.5x speed gives clearly shorter audio, roughly by the factor.

    Not exactly 1/1.5: Piper's duration predictor samples noise (each synthesis differs a
    little) and the silence around a sentence does not scale, so ratios from 0.63 to 0.78 were
    seen. An ignored speed would give about 1.0.
    """
    text = "Speed changes how long this sentence takes to say."
    normal = audio.read_wav((await service.speech.synthesize(SpeechRequest(text=text))).data)
    fast = audio.read_wav(
        (await service.speech.synthesize(SpeechRequest(text=text, speed=1.5))).data
    )
    assert 0.5 < fast.duration_s / normal.duration_s < 0.85


@pytest.mark.parametrize("fmt", [AudioFormat.wav, AudioFormat.mp3, AudioFormat.pcm])
async def test_a_stream_sends_sentences_and_matches_the_stored_audio(
    service: Runtime, fmt: AudioFormat
) -> None:
    text = f"Streams start early. The second sentence follows. A third one ends it in {fmt.value}."
    first_audio = metric("ef_tts_first_audio_seconds_count")
    stream = await service.speech.stream(SpeechRequest(text=text, format=fmt))
    assert not stream.cache_hit and stream.job_id is not None
    assert stream.media_type == audio.MEDIA_TYPES[fmt]
    chunks = [chunk async for chunk in stream.chunks]
    assert len(chunks) >= 3  # at least one piece per sentence
    assert metric("ef_tts_first_audio_seconds_count") == first_audio + 1
    job_id = stream.job_id
    # The last sentence is streamed before the job has stored the joined file.
    await wait_until(lambda: service.jobs.get(job_id).status is JobStatus.succeeded)
    stored = await service.speech.synthesize(SpeechRequest(text=text, format=fmt))
    assert stored.cache_hit and stored.job_id is None
    data = b"".join(chunks)
    if fmt is AudioFormat.pcm:
        assert data == stored.data
    elif fmt is AudioFormat.wav:
        assert np.array_equal(audio.decode(data).samples, audio.read_wav(stored.data).samples)
    else:
        assert audio.decode(data).duration_s == pytest.approx(
            audio.decode(stored.data).duration_s, abs=0.1
        )
    replay = await service.speech.stream(SpeechRequest(text=text, format=fmt))
    assert replay.cache_hit
    assert b"".join([chunk async for chunk in replay.chunks]) == stored.data


async def test_formats_that_cannot_stream_are_refused(service: Runtime) -> None:
    with pytest.raises(InvalidInput, match="flac cannot be streamed; use one of pcm, wav, mp3"):
        await service.speech.stream(SpeechRequest(text="Hello.", format=AudioFormat.flac))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" \n\t\u200b ", "nothing to say"),
        ("x" * 5001, "more than the limit of 5000"),
    ],
)
async def test_bad_text_is_refused_and_queues_nothing(
    service: Runtime, text: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        await service.speech.synthesize(SpeechRequest(text=text))
    assert caught.value.extra.get("param") == "text"
    assert service.jobs.list(limit=10, offset=0)[1] == 0


async def test_voices_resolve(service_factory: ServiceFactory, piper_tts: Server) -> None:
    service = await service_factory(tts_url=piper_tts.url, start=False)
    voices = await service.speech.voices()
    default = next(v.id for v in voices if v.default)
    assert await service.speech.resolve_voice(None) == default
    assert await service.speech.resolve_voice("") == default
    assert await service.speech.resolve_voice(default) == default
    assert await service.speech.resolve_voice("alloy") == default
    assert await service.speech.resolve_voice("Shimmer") == default
    with pytest.raises(UnknownVoice) as caught:
        await service.speech.resolve_voice("nobody")
    assert caught.value.extra["valid"] == [v.id for v in voices]
    assert f"Unknown voice 'nobody'. Valid voices: {default}" in caught.value.message
    mapped = await service_factory(
        tts_url=piper_tts.url, start=False, voice_map=f"nova={default},echo=missing"
    )
    assert await mapped.speech.resolve_voice("nova") == default
    assert await mapped.speech.resolve_voice("echo") == default  # a bad mapping falls back, logged


async def test_engine_health_is_probed_and_cached(
    service: Runtime, service_factory: ServiceFactory
) -> None:
    health = await service.health.engine(max_age_s=0)
    assert health.reachable and health.model_loaded and health.error is None
    assert health.latency_s is not None and health.latency_s > 0
    assert health.engine == "piper"
    assert metric("ef_tts_engine_up") == 1
    assert await service.health.engine(max_age_s=60) is health  # cached, no new probe
    dead = await service_factory(tts_url=f"http://127.0.0.1:{free_port()}", start=False)
    down = await dead.health.engine()
    assert not down.reachable and not down.model_loaded and down.latency_s is None
    assert down.error is not None and "unreachable" in down.error
    assert metric("ef_tts_engine_up") == 0


async def test_sync_timeout_names_the_job_and_keeps_it(
    service_factory: ServiceFactory, piper_tts: Server
) -> None:
    service = await service_factory(tts_url=piper_tts.url, start=False, sync_timeout_s=0.3)
    with pytest.raises(SyncTimeout) as caught:
        await service.speech.synthesize(SpeechRequest(text="Nobody is working on this yet."))
    job_id = caught.value.extra["job_id"]
    assert f"GET /api/v1/jobs/{job_id}" in caught.value.message
    assert service.jobs.get(job_id).status is JobStatus.queued
    await service.start()
    await wait_until(lambda: service.jobs.get(job_id).status is JobStatus.succeeded)
    assert service.jobs.audio(job_id).data[:4] == b"RIFF"


async def test_backpressure_turns_new_work_away(
    service_factory: ServiceFactory, piper_tts: Server
) -> None:
    service = await service_factory(tts_url=piper_tts.url, start=False, queue_max=2)
    await service.speech.submit(SpeechRequest(text="First in line."))
    await service.speech.submit(SpeechRequest(text="Second in line."))
    with pytest.raises(QueueFull) as caught:
        await service.speech.submit(SpeechRequest(text="Third is one too many."))
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    assert service.admin.queue_stats()["queued"] == 2


async def test_job_life_cycle_cancel_retry_audio(
    service_factory: ServiceFactory, piper_tts: Server
) -> None:
    service = await service_factory(tts_url=piper_tts.url, start=False)
    job = await service.speech.submit(
        SpeechRequest(text="Cancel me, then retry me.", format=AudioFormat.mp3)
    )
    assert (
        await service.speech.submit(
            SpeechRequest(text="Cancel me, then retry me.", format=AudioFormat.mp3)
        )
    ).id == job.id
    with pytest.raises(JobConflict, match="is queued; its audio exists once it has succeeded"):
        service.jobs.audio(job.id)
    assert service.jobs.cancel(job.id).status is JobStatus.cancelled
    with pytest.raises(JobConflict, match="only a queued job can be cancelled"):
        service.jobs.cancel(job.id)
    assert service.jobs.retry(job.id).status is JobStatus.queued
    await service.start()
    await wait_until(lambda: service.jobs.get(job.id).status is JobStatus.succeeded)
    result = service.jobs.audio(job.id)
    assert result.media_type == "audio/mpeg" and result.job_id == job.id
    assert audio.decode(result.data).duration_s > 0.5
    stats = service.admin.cache_stats()
    assert stats["entries"] == 2  # the sentence (wav) and the request (mp3)
    assert service.admin.purge_cache() == 2
    with pytest.raises(JobConflict, match="evicted from the cache; submit the request again"):
        service.jobs.audio(job.id)


async def test_health_probes_of_database_and_cache(service: Runtime) -> None:
    assert service.health.database() == (True, None)
    assert service.health.cache() == (True, None)
    stats = service.admin.queue_stats()
    assert stats["workers"] == service.settings.tts_concurrency
    assert stats["max"] == service.settings.queue_max
    assert set(stats["counts"]) == {s.value for s in JobStatus}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limits", "speed", "accepted"),
    [
        ({}, 0.25, True),
        ({}, 4.0, True),
        ({}, 0.2, False),
        ({}, 4.5, False),
        ({}, float("nan"), False),
        ({"min_speed": 0.5, "max_speed": 2.0}, 0.4, False),
        ({"min_speed": 0.5, "max_speed": 2.0}, 2.5, False),
        ({"min_speed": 0.1, "max_speed": 6.0}, 0.1, True),  # widened: the operator decides
        ({"min_speed": 0.1, "max_speed": 6.0}, 5.5, True),
    ],
)
def test_speed_limits_come_from_the_settings(
    make_settings: SettingsFactory, limits: dict[str, float], speed: float, accepted: bool
) -> None:
    settings = make_settings(**limits)
    if accepted:
        check_limits("Hello.", speed, settings)
        return
    with pytest.raises(InvalidInput) as caught:
        check_limits("Hello.", speed, settings)
    assert (
        "EF_MIN_SPEED" in caught.value.message and str(settings.max_speed) in caught.value.message
    )


def test_text_limit_names_the_field(make_settings: SettingsFactory) -> None:
    settings = make_settings(max_text_chars=10)
    check_limits("x" * 10, 1.0, settings)
    with pytest.raises(InvalidInput) as caught:
        check_limits("x" * 11, 1.0, settings, text_field="input")
    assert caught.value.message.startswith("input: 11 characters")
    assert "EF_MAX_TEXT_CHARS" in caught.value.message
