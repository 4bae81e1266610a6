"""Shared fixtures: real recordings, the installed pre-trained parts, small exported models."""
from __future__ import annotations

import gzip
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from voxprompt.audio import SAMPLE_RATE, load_audio

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def _require(path: Path, package: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: install the Debian package {package} (scripts/install.sh does)")
    return path


@pytest.fixture(scope="session")
def asterisk_transcripts() -> dict[str, str]:
    lines = gzip.open(_require(ASTERISK_TEXT, "asterisk-core-sounds-en"), "rt", encoding="utf-8", errors="replace")
    return dict(line.split(":", 1) for line in lines if ":" in line)


@pytest.fixture(scope="session")
def recording() -> Path:
    """A real recording of a person (8 kHz telephone prompt): 'Please leave your message after the tone...'."""
    return _require(ASTERISK_SOUNDS / "vm-intro.wav", "asterisk-core-sounds-en-wav")


@pytest.fixture(scope="session")
def recording_audio(recording) -> np.ndarray:
    return load_audio(recording)


@pytest.fixture(scope="session")
def tiny_ct2():
    from voxprompt.models.assets import whisper_asset
    from voxprompt.models.ctranslate2 import read_ct2_model

    return read_ct2_model(whisper_asset("tiny.en").model_bin)


@pytest.fixture(scope="session")
def default_ct2(tiny_ct2):
    """The Whisper checkpoint the default model's encoder is built from."""
    from voxprompt.export.default_model import DEFAULT_ENCODER
    from voxprompt.models.assets import whisper_asset
    from voxprompt.models.ctranslate2 import read_ct2_model

    return tiny_ct2 if DEFAULT_ENCODER == "tiny.en" else read_ct2_model(whisper_asset(DEFAULT_ENCODER).model_bin)


@pytest.fixture(scope="session")
def f16_model_dir(tmp_path_factory) -> Path:
    """The default recipe exported at f16 without its LoRA adapter: the runtime side of the exactness
    checks (the adapter's own exactness is test_lora_export's)."""
    from voxprompt.export.default_model import build_default_model

    return build_default_model(tmp_path_factory.mktemp("models") / "f16", quant="f16", log=lambda *_: None,
                               with_adapter=False)


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The bundled default model, built into the user's cache as a user's first run would."""
    from voxprompt.export.default_model import ensure_default_model

    return ensure_default_model(log=lambda *_: None)


@pytest.fixture(scope="module")
def transcriber(default_model_dir):
    """The default model loaded once per test module, as the app loads it."""
    from voxprompt.transcriber import Transcriber

    t = Transcriber(default_model_dir)
    yield t
    t.close()


def run_voxprompt(*args, **kwargs) -> subprocess.CompletedProcess:
    """`voxprompt ARGS` in a child process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "voxprompt", *map(str, args)], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 600), **kwargs)


def as_in_a_terminal() -> None:
    """preexec_fn for a child the test will Ctrl-C: SIGINT at its default, as in a terminal. A test run
    started in the background inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


@pytest.fixture(scope="session")
def adapters_home(default_model_dir, tmp_path_factory) -> Path:
    """An adapters folder for the default model with two real LoRA adapters: `again` (the model's own
    trained LoRA applied a second time: a real change to SmolLM2's weights) and `nothing` (what training
    changed when it changed nothing: lora_difference of that LoRA with itself)."""
    import shutil

    from voxprompt.adapters import ADAPTER_FILE, AdapterInfo
    from voxprompt.export.default_model import DEFAULT_ENCODER, trained_adapter_path
    from voxprompt.export.merge_lora import lora_difference
    from voxprompt.manifest import load_manifest

    home = tmp_path_factory.mktemp("adapters")
    base_id = load_manifest(default_model_dir, verify=False).adapter_base_id
    lora = trained_adapter_path(DEFAULT_ENCODER)
    for name in ("again", "nothing"):
        (home / name).mkdir()
        AdapterInfo(name, base_id, sentences=1).write(home / name)
    shutil.copy(lora, home / "again" / ADAPTER_FILE)
    lora_difference(lora, lora, home / "nothing" / ADAPTER_FILE)
    return home
