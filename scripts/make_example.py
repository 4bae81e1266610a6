#!/usr/bin/env python3
"""Make examples/demo.flac: lines by a game character no training run has heard (Faye, from Flight of the
Amazon Queen, in GAME_DEV_CHARACTERS) joined with pauses, stored as 44.1 kHz stereo so the demo also shows
resampling and down-mixing; examples/demo.reference.txt holds what she says, to compare with."""
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from voxprompt.audio import SAMPLE_RATE
from voxprompt.models.games import GAME_DEV_CHARACTERS, Dictionary, GameArchive, game_root, game_splits

SPEAKER = "fotaq:FAYE"
LINES = 6


def main(out: str = "examples/demo.flac") -> None:
    assert SPEAKER in GAME_DEV_CHARACTERS  # the demo must be a voice the model never trained on
    archive = GameArchive(game_root())
    dev = game_splits(archive.lines(), Dictionary.load()).dev
    chosen, parts = [], []
    pause = np.zeros(int(1.0 * SAMPLE_RATE), np.float32)
    for line in sorted((line for line in dev if line.speaker == SPEAKER), key=lambda line: line.key):
        audio = archive.audio(line)
        if 2.5 <= len(audio) / SAMPLE_RATE <= 7.0 and len(line.text.split()) >= 5:
            chosen.append(line.text)
            parts += [audio, pause]
        if len(chosen) == LINES:
            break
    rate = 44100
    audio = soxr.resample(np.concatenate(parts), SAMPLE_RATE, rate)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, np.stack([audio, audio * 0.9], axis=1), rate)
    Path(out).with_suffix(".reference.txt").write_text("\n".join(chosen) + "\n")
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
