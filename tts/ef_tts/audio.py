"""Turn 16-bit mono samples into the bytes a client asked for (WAV, raw PCM, or compressed)."""

from __future__ import annotations

import io
import wave

import numpy as np
import numpy.typing as npt

#: response_format -> (media type, PyAV container, PyAV codec); wav and pcm need no codec.
FORMATS: dict[str, tuple[str, str | None, str | None]] = {
    "wav": ("audio/wav", None, None),
    "pcm": ("audio/L16", None, None),
    "mp3": ("audio/mpeg", "mp3", "libmp3lame"),
    "opus": ("audio/ogg", "ogg", "libopus"),
    "aac": ("audio/aac", "adts", "aac"),
    "flac": ("audio/flac", "flac", "flac"),
}


class UnsupportedFormat(Exception):
    """The format is unknown or cannot be encoded here (PyAV missing)."""


def to_wav(samples: npt.NDArray[np.int16], sample_rate: int) -> bytes:
    """A RIFF/WAVE file: 16-bit PCM, mono, as the stock Coqui server returns."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.astype("<i2", copy=False).tobytes())
    return out.getvalue()


def encode(samples: npt.NDArray[np.int16], sample_rate: int, fmt: str) -> tuple[bytes, str]:
    """(bytes, media type) of ``samples`` in ``fmt``; raises ``UnsupportedFormat``."""
    if fmt not in FORMATS:
        raise UnsupportedFormat(
            f"Unsupported response_format {fmt!r}; use one of {', '.join(FORMATS)}"
        )
    media_type, container, codec = FORMATS[fmt]
    if fmt == "wav":
        return to_wav(samples, sample_rate), media_type
    if fmt == "pcm":
        return samples.astype(
            "<i2", copy=False
        ).tobytes(), f"{media_type};rate={sample_rate};channels=1"
    assert container is not None and codec is not None
    return _encode_av(samples, sample_rate, container, codec), media_type


def _encode_av(
    samples: npt.NDArray[np.int16], sample_rate: int, container: str, codec: str
) -> bytes:
    try:
        import av
    except ImportError as exc:  # the Coqui image may be built without PyAV
        raise UnsupportedFormat(f"{container} needs PyAV (pip install av); use wav or pcm") from exc
    out = io.BytesIO()
    rate = 48000 if codec == "libopus" else sample_rate
    with av.open(out, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return out.getvalue()
