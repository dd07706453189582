"""Make a tiny, untrained Coqui VITS model: ``model.pth`` + ``config.json`` (+ ``speakers.json``).

Run with the Coqui environment's Python (it needs torch)::

    .venv-coqui/bin/python tests/utils/tiny_vits.py OUT_DIR [--speakers alice,bob]

The weights are random, so the audio is noise, but the files have exactly the shape of a
downloaded VITS model and load through the same code (``TTS.api.TTS(model_path=, config_path=)``).
Layers are a few channels wide so that loading and synthesis take a moment on a CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def make(out_dir: Path, speakers: list[str]) -> None:
    import torch
    from TTS.tts.configs.shared_configs import BaseDatasetConfig, CharactersConfig
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits, VitsArgs

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    args = VitsArgs(
        hidden_channels=16,
        hidden_channels_ffn_text_encoder=32,
        num_heads_text_encoder=2,
        num_layers_text_encoder=1,
        num_layers_posterior_encoder=1,
        num_layers_flow=1,
        resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]],
        upsample_initial_channel_decoder=16,
        use_sdp=False,
        init_discriminator=False,
        speaker_embedding_channels=8,
    )
    config = VitsConfig(
        model_args=args,
        use_phonemes=False,
        phoneme_language="en",
        text_cleaner="basic_cleaners",
        characters=CharactersConfig(
            characters_class="TTS.tts.models.vits.VitsCharacters",
            pad="_",
            eos="",
            bos="",
            blank=None,
            characters="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
            punctuations="!'(),-.:;? ",
            phonemes="",
        ),
        datasets=[BaseDatasetConfig(formatter="ljspeech", path="", meta_file_train="")],
        test_sentences=[],
    )
    config.audio.sample_rate = 16000
    config.audio.do_trim_silence = False  # noise has no "silence" end to trim at
    if speakers:
        speakers_file = out_dir / "speakers.json"
        speakers_file.write_text(json.dumps({name: i for i, name in enumerate(speakers)}))
        config.model_args.use_speaker_embedding = True
        config.model_args.num_speakers = len(speakers)
        config.model_args.speakers_file = str(speakers_file)
        config.use_speaker_embedding = True
        config.num_speakers = len(speakers)
        config.speakers_file = str(speakers_file)
    model = Vits.init_from_config(config)
    # Untrained, the duration predictor gives every character one frame, whatever the speed.
    # Give each ~6 frames (log 6 ~ 1.8) so that the length of speech follows text and speed.
    with torch.no_grad():
        model.duration_predictor.proj.weight.zero_()
        model.duration_predictor.proj.bias.fill_(1.8)
    torch.save({"model": model.state_dict(), "config": config.to_dict()}, out_dir / "model.pth")
    config.save_json(str(out_dir / "config.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--speakers", default="", help="comma-separated speaker names")
    ns = parser.parse_args()
    make(ns.out_dir, [s for s in ns.speakers.split(",") if s])


if __name__ == "__main__":
    main()
