"""Audio handling: WAV in, PCM arithmetic, joining without clicks, tempo, encoding (PyAV).

Engines answer with WAV; everything in between is 16-bit mono PCM in a numpy array. Sentences
are joined with short raised-cosine fades and a pause so no seam clicks, and the same shaping is
used by the streaming path (`SentenceStreamer`) so a streamed answer sounds like the stored one.
Every output format is really encoded (mp3 by LAME, opus in Ogg, flac, aac in ADTS).
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
import numpy.typing as npt

from ef_backend.models import AudioFormat

__all__ = [
    "FADE_S",
    "MEDIA_TYPES",
    "PAUSE_S",
    "PCM_SAMPLE_RATE",
    "STREAMABLE_FORMATS",
    "AudioDecodeError",
    "Pcm",
    "SentenceStreamer",
    "StreamEncoder",
    "change_tempo",
    "decode",
    "encode",
    "join",
    "read_wav",
    "resample",
    "stream_encoder",
    "to_wav",
]

Samples = npt.NDArray[np.int16]

#: Fade at each sentence edge; 10 ms is inaudible as a fade yet removes the step that clicks.
FADE_S = 0.01
#: Silence between sentences, on top of what the engine leaves at the edges.
PAUSE_S = 0.15
#: Raw PCM is 24 kHz s16le mono, what OpenAI clients expect of response_format=pcm.
PCM_SAMPLE_RATE = 24_000
#: Opus only takes 8/12/16/24/48 kHz.
_OPUS_RATE = 48_000

MEDIA_TYPES: dict[AudioFormat, str] = {
    AudioFormat.wav: "audio/wav",
    AudioFormat.mp3: "audio/mpeg",
    AudioFormat.opus: "audio/ogg",
    AudioFormat.flac: "audio/flac",
    AudioFormat.aac: "audio/aac",
    AudioFormat.pcm: "audio/L16",
}
STREAMABLE_FORMATS = (AudioFormat.pcm, AudioFormat.wav, AudioFormat.mp3)

# container, codec, fixed sample rate (None: keep the input's)
_CODECS: dict[AudioFormat, tuple[str, str, int | None]] = {
    AudioFormat.mp3: ("mp3", "libmp3lame", None),
    AudioFormat.opus: ("ogg", "libopus", _OPUS_RATE),
    AudioFormat.flac: ("flac", "flac", None),
    AudioFormat.aac: ("adts", "aac", None),
}
_FRAME = 4096


class AudioDecodeError(ValueError):
    """The bytes are not audio we can read (a broken or empty engine answer)."""


@dataclass(frozen=True)
class Pcm:
    """16-bit mono samples and their rate."""

    samples: Samples
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0

    @classmethod
    def silence(cls, seconds: float, sample_rate: int) -> Pcm:
        return cls(np.zeros(round(seconds * sample_rate), dtype=np.int16), sample_rate)


def _frames(pcm: Pcm) -> Iterator[av.AudioFrame]:
    for start in range(0, len(pcm.samples), _FRAME):
        chunk = np.ascontiguousarray(pcm.samples[start : start + _FRAME]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate = pcm.sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, pcm.sample_rate)
        yield frame


def _to_mono_s16(frames: Iterable[av.AudioFrame], rate: int | None = None) -> Pcm:
    resampler: av.AudioResampler | None = None
    chunks: list[Samples] = []
    out_rate = rate
    for frame in frames:
        if resampler is None:
            out_rate = rate or frame.sample_rate
            resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
        for converted in resampler.resample(frame):
            chunks.append(converted.to_ndarray().reshape(-1).astype(np.int16, copy=False))
    if resampler is not None:
        for converted in resampler.resample(None):
            chunks.append(converted.to_ndarray().reshape(-1).astype(np.int16, copy=False))
    if out_rate is None:
        raise AudioDecodeError("no audio frames in the input")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return Pcm(samples, out_rate)


def decode(data: bytes, *, format: str | None = None) -> Pcm:
    """Decode any container/codec PyAV knows to 16-bit mono PCM."""
    try:
        with av.open(io.BytesIO(data), mode="r", format=format) as container:
            if not container.streams.audio:
                raise AudioDecodeError("no audio stream in the input")
            return _to_mono_s16(container.decode(audio=0))
    except av.FFmpegError as exc:
        raise AudioDecodeError(f"cannot decode audio: {exc}") from exc


def read_wav(data: bytes) -> Pcm:
    """A WAV file as 16-bit mono PCM: the fast path for plain PCM, PyAV for anything else."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioDecodeError("not a WAV file (no RIFF/WAVE header)")
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            if reader.getsampwidth() == 2 and reader.getcomptype() == "NONE":
                channels = reader.getnchannels()
                raw = reader.readframes(reader.getnframes())
                samples = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2")
                if channels > 1:
                    samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
                return Pcm(samples.astype(np.int16), reader.getframerate())
    except (wave.Error, EOFError):
        pass  # float or extensible WAV: let FFmpeg read it
    return decode(data, format="wav")


def to_wav(pcm: Pcm) -> bytes:
    """A 16-bit mono PCM WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(pcm.sample_rate)
        writer.writeframes(pcm.samples.astype("<i2").tobytes())
    return buffer.getvalue()


def resample(pcm: Pcm, sample_rate: int) -> Pcm:
    """The same sound at another sample rate."""
    if pcm.sample_rate == sample_rate or len(pcm.samples) == 0:
        return Pcm(pcm.samples, sample_rate) if len(pcm.samples) == 0 else pcm
    return _to_mono_s16(_frames(pcm), rate=sample_rate)


def _atempo_chain(speed: float) -> list[float]:
    """atempo takes 0.5..2.0 per instance on older FFmpeg: chain instances for wider factors."""
    factors: list[float] = []
    while speed > 2.0:
        factors.append(2.0)
        speed /= 2.0
    while speed < 0.5:
        factors.append(0.5)
        speed /= 0.5
    factors.append(speed)
    return factors


def change_tempo(pcm: Pcm, speed: float) -> Pcm:
    """Play ``speed`` times faster without changing the pitch (FFmpeg atempo)."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    if abs(speed - 1.0) < 1e-6 or len(pcm.samples) == 0:
        return pcm
    graph = av.filter.Graph()
    nodes = [
        graph.add_abuffer(
            sample_rate=pcm.sample_rate,
            format="s16",
            layout="mono",
            time_base=Fraction(1, pcm.sample_rate),
        )
    ]
    nodes += [graph.add("atempo", f"{factor:.6f}") for factor in _atempo_chain(speed)]
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes)
    graph.configure()
    out: list[Samples] = []

    def _drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            out.append(frame.to_ndarray().reshape(-1).astype(np.int16, copy=False))

    for frame in _frames(pcm):
        graph.push(frame)
        _drain()
    graph.push(None)
    _drain()
    samples = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
    return Pcm(samples, pcm.sample_rate)


def _fade(samples: Samples, sample_rate: int, fade_s: float) -> Samples:
    """Raised-cosine fade in and out, so each segment starts and ends at zero."""
    n = min(round(fade_s * sample_rate), len(samples) // 2)
    if n <= 0:
        return samples
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float64))
    shaped = samples.astype(np.float64)
    shaped[:n] *= ramp
    shaped[-n:] *= ramp[::-1]
    return np.round(shaped).astype(np.int16)


class SentenceStreamer:
    """Turns sentences into one continuous signal: fades at each edge and a pause between them.

    `join` and the streaming path both use it, so stored and streamed audio are the same samples.
    """

    def __init__(self, *, pause_s: float = PAUSE_S, fade_s: float = FADE_S) -> None:
        self.pause_s = pause_s
        self.fade_s = fade_s
        self.sample_rate: int | None = None
        self._count = 0

    def add(self, sentence: Pcm) -> Pcm:
        """The samples to append for the next sentence (its leading pause included)."""
        if self.sample_rate is None:
            self.sample_rate = sentence.sample_rate
        pcm = resample(sentence, self.sample_rate)
        shaped = _fade(pcm.samples, self.sample_rate, self.fade_s)
        if self._count:
            pause = np.zeros(round(self.pause_s * self.sample_rate), dtype=np.int16)
            shaped = np.concatenate([pause, shaped])
        self._count += 1
        return Pcm(shaped, self.sample_rate)


def join(sentences: Iterable[Pcm], *, pause_s: float = PAUSE_S, fade_s: float = FADE_S) -> Pcm:
    """Sentences in order as one signal, without clicks at the seams."""
    streamer = SentenceStreamer(pause_s=pause_s, fade_s=fade_s)
    parts = [streamer.add(sentence).samples for sentence in sentences]
    if not parts or streamer.sample_rate is None:
        raise ValueError("nothing to join")
    return Pcm(np.concatenate(parts), streamer.sample_rate)


def _encode_container(pcm: Pcm, fmt: AudioFormat) -> bytes:
    container_name, codec, rate = _CODECS[fmt]
    source = resample(pcm, rate) if rate else pcm
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_name) as container:
        stream = container.add_stream(codec, rate=source.sample_rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        for frame in _frames(source):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def encode(pcm: Pcm, fmt: AudioFormat) -> bytes:
    """The whole signal encoded as ``fmt`` (see MEDIA_TYPES for what each is)."""
    if fmt is AudioFormat.wav:
        return to_wav(pcm)
    if fmt is AudioFormat.pcm:
        stream = _PcmStream()
        return stream.feed(pcm) + stream.finish()
    return _encode_container(pcm, fmt)


class StreamEncoder(Protocol):
    """Encodes a signal that arrives in pieces; the concatenated output is one valid file."""

    def feed(self, pcm: Pcm) -> bytes: ...

    def finish(self) -> bytes: ...


class _PcmStream:
    """Raw 24 kHz PCM; one resampler for the whole stream, so the bytes equal `encode`'s."""

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._rate = 0
        self._pts = 0

    def _convert(self, frame: av.AudioFrame | None) -> bytes:
        assert self._resampler is not None
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return b"".join(chunk.astype("<i2").tobytes() for chunk in out)

    def feed(self, pcm: Pcm) -> bytes:
        if self._resampler is None:
            self._rate = pcm.sample_rate
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_SAMPLE_RATE)
        out = bytearray()
        for frame in _frames(resample(pcm, self._rate)):
            frame.pts = self._pts
            self._pts += frame.samples
            out += self._convert(frame)
        return bytes(out)

    def finish(self) -> bytes:
        return self._convert(None) if self._resampler is not None else b""


class _WavStream:
    """A WAV header with unknown length (0xFFFFFFFF), as ffmpeg writes when it cannot seek."""

    def __init__(self) -> None:
        self._rate: int | None = None

    def _header(self, rate: int) -> bytes:
        unknown = 0xFFFFFFFF
        return (
            b"RIFF"
            + struct.pack("<I", unknown)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data"
            + struct.pack("<I", unknown)
        )

    def feed(self, pcm: Pcm) -> bytes:
        head = b""
        if self._rate is None:
            self._rate = pcm.sample_rate
            head = self._header(pcm.sample_rate)
        return head + resample(pcm, self._rate).samples.astype("<i2").tobytes()

    def finish(self) -> bytes:
        return b""


class _Mp3Stream:
    """Raw MP3 frames straight from LAME: each frame stands alone, so chunks play as they come."""

    def __init__(self) -> None:
        self._codec: av.AudioCodecContext | None = None
        self._rate = 0

    def _open(self, rate: int) -> av.AudioCodecContext:
        codec = av.CodecContext.create("libmp3lame", "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = rate
        codec.layout = "mono"
        codec.format = "s16p"
        codec.bit_rate = 64_000
        codec.time_base = Fraction(1, rate)
        return codec

    def feed(self, pcm: Pcm) -> bytes:
        if self._codec is None:
            self._rate = pcm.sample_rate
            self._codec = self._open(pcm.sample_rate)
        out = bytearray()
        for frame in _frames(resample(pcm, self._rate)):
            frame.pts = None
            for packet in self._codec.encode(frame):
                out += bytes(packet)
        return bytes(out)

    def finish(self) -> bytes:
        if self._codec is None:
            return b""
        return b"".join(bytes(packet) for packet in self._codec.encode(None))


def stream_encoder(fmt: AudioFormat) -> StreamEncoder:
    """A streaming encoder for pcm, wav or mp3."""
    if fmt is AudioFormat.pcm:
        return _PcmStream()
    if fmt is AudioFormat.wav:
        return _WavStream()
    if fmt is AudioFormat.mp3:
        return _Mp3Stream()
    raise ValueError(f"format {fmt.value} cannot be streamed; use one of pcm, wav, mp3")
