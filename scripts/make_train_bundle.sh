#!/usr/bin/env bash
# Pack what scripts/train_remote.sh needs on a lent GPU machine (PyTorch there, nothing of ours) into parts
# that each fit one device call beside the working tree (64 MiB a call):
#   p1: espeak-ng (binary, libraries, English data), the Python wheels for cp312, the Whisper encoder,
#       fortunes text, room impulse responses, the asterisk recordings      -> train_remote.sh start
#   p2..: the checkpoint to continue (INIT, optional) and SmolLM2's GGUF in pieces -> train_remote.sh train
# Run from the repository root with the project's .venv installed; the parts go to $OUT_DIR/p1, p2, ...
set -euo pipefail
OUT_DIR=${OUT_DIR:-.carry}
INIT=${INIT:-}                 # e.g. runs/b/checkpoint.pt: its projector, CTC head and LoRA seed the run
PART_MB=${PART_MB:-44}         # room a call leaves beside the tracked files
PY=${PY:-.venv/bin/python}
work=$(mktemp -d)
b=$work/vpb
lib=$b/sys/usr/lib/x86_64-linux-gnu
mkdir -p "$b/sys/usr/bin" "$lib" "$b/wheels" "$b/assets"

# espeak-ng with a stand-in libpcaudio: --stdout never plays audio, so its PulseAudio chain can stay behind.
cp -L /usr/bin/espeak-ng "$b/sys/usr/bin/"
cp -L /usr/lib/x86_64-linux-gnu/libespeak-ng.so.1 /usr/lib/x86_64-linux-gnu/libsonic.so.0 "$lib/"
cp -a /usr/lib/x86_64-linux-gnu/espeak-ng-data "$lib/"
find "$lib/espeak-ng-data" -maxdepth 1 -name '*_dict' ! -name 'en_dict' -delete
printf '%s\n' '#include <stddef.h>' \
  'void *create_audio_device_object(const char *a, const char *b, const char *c) { return NULL; }' \
  'int audio_object_open(void *o, int f, unsigned r, unsigned char c) { return -1; }' \
  'void audio_object_close(void *o) {}' 'void audio_object_destroy(void *o) {}' \
  'int audio_object_write(void *o, const void *d, size_t n) { return -1; }' \
  'int audio_object_drain(void *o) { return 0; }' 'int audio_object_flush(void *o) { return 0; }' \
  'const char *audio_object_strerror(void *o, int e) { return "no audio"; }' > "$work/pcaudio.c"
gcc -shared -fPIC -O2 -o "$lib/libpcaudio.so.0" "$work/pcaudio.c"

# Wheels the GPU image lacks (its Python is 3.12).
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$b/wheels" gguf==0.19.0 jiwer==4.0.0 rapidfuzz==3.14.6 soundfile==0.14.0 \
  soxr==1.1.0 cffi==2.1.1 pycparser==3.12 whisper_normalizer==0.1.15 more_itertools==11.2.1 \
  indic-numtowords==1.1.0 text2num==3.1.0

# Assets in the $VOXPROMPT_ASSETS layout (models/assets.py): the Whisper encoder alone, in float16.
mkdir -p "$b/assets/whisper-tiny.en" "$b/assets/fortunes" "$b/assets/asterisk/en" "$b/assets/impulses"
"$PY" - "$b/assets" <<'PY'
import sys
from pathlib import Path
import soundfile as sf
from voxprompt.models.assets import whisper_asset
from voxprompt.models.augment import impulse_responses
from voxprompt.models.corpus import FORTUNE_DIR, FORTUNE_FILES
from voxprompt.models.ctranslate2 import read_ct2_model, write_ct2_model
from voxprompt.models.dataset import ASTERISK_SOUNDS, ASTERISK_TEXT, real_prompts
out = Path(sys.argv[1])
model = read_ct2_model(whisper_asset("tiny.en").model_bin)
write_ct2_model(out / "whisper-tiny.en/model.bin", model, keep=lambda n: n.startswith("encoder/"))
for name in FORTUNE_FILES:
    if (FORTUNE_DIR / name).exists():
        (out / "fortunes" / name).write_bytes((FORTUNE_DIR / name).read_bytes())
for i, ir in enumerate(impulse_responses()):
    sf.write(out / f"impulses/ir{i}.wav", ir, 16000)
(out / "asterisk/core-sounds-en.txt.gz").write_bytes(ASTERISK_TEXT.read_bytes())
for path, _ in real_prompts():
    target = out / "asterisk/en" / path.relative_to(ASTERISK_SOUNDS).with_suffix(".flac")
    target.parent.mkdir(parents=True, exist_ok=True)
    audio, rate = sf.read(path)
    sf.write(target, audio, rate, format="FLAC")
PY

rm -rf "$OUT_DIR"/p[0-9]*
mkdir -p "$OUT_DIR/p1"
cp -a "$b"/. "$OUT_DIR/p1/"
# The rest: the checkpoint to continue (slimmed to what a warm start reads) and the GGUF, as one tar in pieces.
rest=$work/rest
mkdir -p "$rest/assets"
if [ -n "$INIT" ]; then
  "$PY" - "$INIT" "$rest/init.pt" <<'PY'
import sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
half = lambda d: {k: v.half() if v.is_floating_point() else v for k, v in d.items() if k != "rows"}
torch.save({"stage": state["stage"], "step": state["step"], "projector": half(state["projector"]),
            "ctc": half(state["ctc"]), "lora": half(state.get("lora") or {})}, sys.argv[2])
PY
fi
cp "$("$PY" -c "from voxprompt.models.assets import smollm2_gguf; print(smollm2_gguf())")" "$rest/assets/"
tar cf "$work/rest.tar" -C "$rest" .
split -b "${PART_MB}M" -d "$work/rest.tar" "$work/rest.part-"
k=2
for piece in "$work"/rest.part-*; do mkdir -p "$OUT_DIR/p$k"; mv "$piece" "$OUT_DIR/p$k/"; k=$((k + 1)); done
rm -rf "$work"
du -sh "$OUT_DIR"/p[0-9]*
