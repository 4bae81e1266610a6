"""Offline text-to-speech voices for training speech: espeak-ng, flite and SVOX Pico.

A Voice is a name plus engine settings; whole voices are held out of training (HELD_OUT) so that
accuracy is also measured on voices the model never heard.
"""
from __future__ import annotations

import io
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from voxprompt.audio import to_mono_16k


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak | flite | pico
    name: str  # espeak "en-gb+f3", flite "slt", pico "en-US"

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


ESPEAK_ACCENTS_TRAIN = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan")
ESPEAK_ACCENTS_HELD_OUT = ("en-029", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS_TRAIN = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "adam", "Alex",
                         "Annie", "david", "ed", "linda", "max", "paul", "rob", "steph", "travis", "zac", "Andy")
ESPEAK_VARIANTS_HELD_OUT = ("f5", "m8", "benjamin", "belinda")

TRAIN_VOICES = tuple(
    [Voice("espeak", f"{a}+{v}") for a in ESPEAK_ACCENTS_TRAIN for v in ESPEAK_VARIANTS_TRAIN]
    + [Voice("flite", v) for v in ("kal16", "awb", "slt")]
    + [Voice("pico", "en-US")]
)
HELD_OUT = tuple(
    [Voice("espeak", f"{a}+{v}") for a in ESPEAK_ACCENTS_HELD_OUT for v in ESPEAK_VARIANTS_HELD_OUT]
    + [Voice("flite", "rms"), Voice("pico", "en-GB")]
)


def synthesize(voice: Voice, text: str, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """16 kHz mono float32 speech of `text`; rate and pitch are multipliers around the voice's own."""
    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(165 * rate)), "-p", str(int(50 * pitch)), "--stdout", text]
        wav = subprocess.run(cmd, capture_output=True, check=True).stdout
        audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    elif voice.engine == "flite":
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            stretch = f"--setf duration_stretch={1 / rate:.2f}"
            subprocess.run(["flite", "-voice", voice.name, *stretch.split(), "-t", text, "-o", tmp.name],
                           capture_output=True, check=True)
            audio, sr = sf.read(tmp.name, dtype="float32")
    elif voice.engine == "pico":
        from py_nanotts import NanoTTS

        pcm = NanoTTS().speak(text, voice=voice.name, speed=rate, pitch=pitch)
        audio, sr = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768, 16000
    else:
        raise ValueError(f"unknown TTS engine {voice.engine!r}")
    return to_mono_16k(audio, sr)
