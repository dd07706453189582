"""The `info` answer lists the engine's voices as Wyoming voices; requests name them back."""

from __future__ import annotations

import pytest
from ef_backend.core.errors import UnknownVoice
from ef_backend.services.engine import EngineInfo, EngineVoice
from ef_backend.wyoming.voices import describe, voice_id
from wyoming.info import Info
from wyoming.tts import SynthesizeVoice

ENGINE = EngineInfo(engine="piper", model="en_US-joe-medium", loaded=True, status="ok", error=None)


def _voice(id: str, language: str | None = "en_US", *, default: bool = False) -> EngineVoice:
    return EngineVoice(
        id=id, name=id, language=language, engine="piper", sample_rate=22050, default=default
    )


VOICES = [
    _voice("en_US-joe-medium", default=True),
    _voice("en_GB-vctk-medium", "en_GB"),
    _voice("en_GB-vctk-medium:p225", "en_GB"),
    _voice("en_GB-vctk-medium:p226", "en_GB"),
    _voice("de_DE-thorsten-low", "de_DE"),
    _voice("mystery", None),
]


def test_describe_lists_each_voice_once_with_its_speakers_and_language() -> None:
    info = describe(VOICES, ENGINE, version="1.2.3")
    # Through the wire format and back, as a client (Home Assistant) reads it.
    program = Info.from_event(info.event()).tts[0]
    assert program.name == "echoforge"
    assert program.version == "1.2.3"
    assert program.supports_synthesize_streaming is True
    assert program.installed is True
    listed = {v.name: v for v in program.voices}
    assert list(listed) == sorted(
        ["en_US-joe-medium", "en_GB-vctk-medium", "de_DE-thorsten-low", "mystery"]
    )
    assert [s.name for s in listed["en_GB-vctk-medium"].speakers or []] == ["p225", "p226"]
    assert listed["en_US-joe-medium"].speakers is None
    assert listed["de_DE-thorsten-low"].languages == ["de_DE"]
    assert listed["mystery"].languages == ["und"]
    assert listed["en_US-joe-medium"].description == "en_US-joe-medium (en_US)"


def test_name_and_speaker_become_the_engine_voice_id() -> None:
    assert voice_id(None, VOICES) is None
    assert voice_id(SynthesizeVoice(name="en_US-joe-medium"), VOICES) == "en_US-joe-medium"
    wanted = SynthesizeVoice(name="en_GB-vctk-medium", speaker="p226")
    assert voice_id(wanted, VOICES) == "en_GB-vctk-medium:p226"
    # Unknown names go on to the speech service, which answers them like the HTTP API.
    assert voice_id(SynthesizeVoice(name="nope"), VOICES) == "nope"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en_US", "en_US-joe-medium"),  # the default voice speaks it
        ("en-GB", "en_GB-vctk-medium"),  # exact region, either spelling
        ("de", "de_DE-thorsten-low"),  # any region of the language
        ("de_AT", "de_DE-thorsten-low"),
    ],
)
def test_a_language_alone_picks_a_voice_that_speaks_it(language: str, expected: str) -> None:
    assert voice_id(SynthesizeVoice(language=language), VOICES) == expected


def test_a_language_no_voice_speaks_is_an_unknown_voice() -> None:
    with pytest.raises(UnknownVoice) as caught:
        voice_id(SynthesizeVoice(language="fr_FR"), VOICES)
    assert caught.value.message == "No voice speaks 'fr_FR'. Languages: de_DE, en_GB, en_US, und."
