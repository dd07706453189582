"""Audio: WAV in, joins without clicks, tempo, every format really encoded (ffprobe checks)."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from ef_backend.models import AudioFormat
from ef_backend.services import audio
from ef_backend.services.audio import Pcm

from tests.backend.services.helpers import ffprobe

RATE = 22_050


def tone(seconds: float, freq: float = 440.0, amplitude: int = 12_000, rate: int = RATE) -> Pcm:
    t = np.arange(round(seconds * rate)) / rate
    return Pcm((np.sin(2 * np.pi * freq * t) * amplitude).astype(np.int16), rate)


def loud_edges(seconds: float, level: int = 20_000) -> Pcm:
    """A signal that starts and ends at a high level: joined raw, the seam would click."""
    return Pcm(np.full(round(seconds * RATE), level, dtype=np.int16), RATE)


def dominant_hz(pcm: Pcm) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(pcm.samples), 1 / pcm.sample_rate)[int(np.argmax(spectrum))])


def test_wav_round_trip_is_exact() -> None:
    pcm = tone(0.5)
    back = audio.read_wav(audio.to_wav(pcm))
    assert back.sample_rate == RATE
    assert np.array_equal(back.samples, pcm.samples)


def test_read_wav_mixes_stereo_down() -> None:
    left = tone(0.2).samples
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(np.stack([left, np.zeros_like(left)], axis=1).astype("<i2").tobytes())
    mono = audio.read_wav(buffer.getvalue())
    assert len(mono.samples) == len(left)
    assert np.max(np.abs(mono.samples.astype(int) - left.astype(int) // 2)) <= 1


@pytest.mark.system
def test_read_wav_reads_float_wav_through_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "float.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:duration=0.5",
            "-ar",
            "16000",
            "-c:a",
            "pcm_f32le",
            str(path),
        ],
        check=True,
    )
    pcm = audio.read_wav(path.read_bytes())
    assert pcm.sample_rate == 16_000
    assert pcm.duration_s == pytest.approx(0.5, abs=0.01)
    assert dominant_hz(pcm) == pytest.approx(300, abs=5)


@pytest.mark.parametrize(
    "data", [b"", b"not audio at all" * 10, b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * 40]
)
def test_read_wav_rejects_garbage(data: bytes) -> None:
    with pytest.raises(audio.AudioDecodeError):
        audio.read_wav(data)


def test_join_has_no_click_at_the_seams() -> None:
    first, second = loud_edges(0.3, 20_000), loud_edges(0.3, -20_000)
    raw = np.concatenate([first.samples, second.samples]).astype(np.int32)
    assert np.max(np.abs(np.diff(raw))) == 40_000  # what an unshaped join does
    joined = audio.join([first, second])
    jumps = np.abs(np.diff(joined.samples.astype(np.int32)))
    # A 10 ms raised-cosine fade from 20000 moves at most ~20000*pi/(2*220) per sample.
    assert jumps.max() < 200
    assert joined.samples[0] == 0 and joined.samples[-1] == 0
    pause = joined.samples[len(first.samples) : len(first.samples) + round(audio.PAUSE_S * RATE)]
    assert np.all(pause == 0)
    expected = 0.6 + audio.PAUSE_S
    assert joined.duration_s == pytest.approx(expected, abs=1 / RATE)


def test_join_resamples_a_sentence_at_another_rate() -> None:
    joined = audio.join([tone(0.2), tone(0.2, rate=16_000)])
    assert joined.sample_rate == RATE
    assert joined.duration_s == pytest.approx(0.4 + audio.PAUSE_S, abs=0.01)


def test_change_tempo_changes_duration_not_pitch() -> None:
    pcm = tone(2.0, freq=440)
    for speed in (0.5, 1.5, 2.0, 3.0):
        changed = audio.change_tempo(pcm, speed)
        assert changed.duration_s == pytest.approx(2.0 / speed, rel=0.03)
        assert dominant_hz(changed) == pytest.approx(440, abs=5)
    assert audio.change_tempo(pcm, 1.0) is pcm
    with pytest.raises(ValueError, match="positive"):
        audio.change_tempo(pcm, 0)


@pytest.mark.parametrize(
    ("fmt", "codec", "rate"),
    [
        (AudioFormat.wav, "pcm_s16le", RATE),
        (AudioFormat.mp3, "mp3", RATE),
        (AudioFormat.opus, "opus", 48_000),
        (AudioFormat.flac, "flac", RATE),
        (AudioFormat.aac, "aac", RATE),
    ],
)
@pytest.mark.system
def test_each_format_is_really_encoded(
    fmt: AudioFormat, codec: str, rate: int, tmp_path: Path
) -> None:
    signal = audio.join([tone(1.0), tone(1.0, freq=660)])
    path = tmp_path / f"out.{fmt.value}"
    path.write_bytes(audio.encode(signal, fmt))
    info = ffprobe(path)
    streams = info["streams"]
    assert isinstance(streams, list) and len(streams) == 1
    assert streams[0]["codec_name"] == codec
    assert int(streams[0]["sample_rate"]) == rate
    assert streams[0]["channels"] == 1
    decoded = audio.decode(path.read_bytes())
    # Lossy codecs add encoder delay and padding (tens of ms), never more.
    assert decoded.duration_s == pytest.approx(signal.duration_s, abs=0.12)
    assert fmt in audio.MEDIA_TYPES


def test_pcm_is_raw_s16le_at_24khz() -> None:
    data = audio.encode(tone(1.0), AudioFormat.pcm)
    assert abs(len(data) - 2 * audio.PCM_SAMPLE_RATE) <= 64  # one second, no header
    samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    assert dominant_hz(Pcm(samples, audio.PCM_SAMPLE_RATE)) == pytest.approx(440, abs=5)
    assert audio.MEDIA_TYPES[AudioFormat.pcm] == "audio/L16"


@pytest.mark.system
@pytest.mark.parametrize("fmt", audio.STREAMABLE_FORMATS)
def test_streaming_encoders_make_one_valid_stream(fmt: AudioFormat, tmp_path: Path) -> None:
    sentences = [tone(0.6), tone(0.4, freq=330), tone(0.8, freq=550)]
    encoder = audio.stream_encoder(fmt)
    shaper = audio.SentenceStreamer()
    chunks = [encoder.feed(shaper.add(sentence)) for sentence in sentences]
    chunks.append(encoder.finish())
    assert all(chunks[:2]), "every sentence yields audio at once (mp3 may hold back one frame)"
    data = b"".join(chunks)
    whole = audio.join(sentences)
    if fmt is AudioFormat.pcm:
        assert data == audio.encode(whole, AudioFormat.pcm)  # streamed bytes = stored bytes
        return
    path = tmp_path / f"stream.{fmt.value}"
    path.write_bytes(data)
    info = ffprobe(path)
    assert info["streams"][0]["codec_name"] == ("mp3" if fmt is AudioFormat.mp3 else "pcm_s16le")  # type: ignore[index]
    decoded = audio.decode(data)
    assert decoded.duration_s == pytest.approx(whole.duration_s, abs=0.08)
    if fmt is AudioFormat.wav:
        # Streamed and stored audio are the same samples.
        assert np.array_equal(decoded.samples, whole.samples)


def test_flac_cannot_be_streamed() -> None:
    with pytest.raises(ValueError, match="cannot be streamed"):
        audio.stream_encoder(AudioFormat.flac)
