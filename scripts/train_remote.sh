#!/usr/bin/env bash
# Train the default model on a machine that has PyTorch and a GPU but none of this project's packages.
# The parts come as a bundle unpacked at $BUNDLE (scripts/make_train_bundle.sh writes it in parts):
#   sys/ (espeak-ng, flite unpacked from Debian packages), wheels/, assets/ (VOXPROMPT_ASSETS layout),
#   gguf.part-* (SmolLM2 split to travel). Results go to $RESULTS.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=${BUNDLE:-/tmp/vpb}
RESULTS=${RESULTS:-$REPO/runs/remote}
N_TRAIN=${N_TRAIN:-20000}
DEADLINE_MINUTES=${DEADLINE_MINUTES:-6.5}
DEVICE=${DEVICE:-cuda}
EXTRA_TRAIN_ARGS=${EXTRA_TRAIN_ARGS:-}

gguf=$BUNDLE/assets/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || cat "$BUNDLE"/gguf.part-* > "$gguf"
lib=$BUNDLE/sys/usr/lib/x86_64-linux-gnu
export PATH=$BUNDLE/sys/usr/bin:$PATH
export LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-}
export ESPEAK_DATA_PATH=$lib
site=/tmp/vp-site
PYTHON=${PYTHON:-python3}
if [ "${INSTALL_WHEELS:-1}" = 1 ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$BUNDLE"/wheels/*.whl
fi
# The package maps app/ -> voxprompt, export/ and models/ -> its subpackages: a link farm does the same.
mkdir -p "$site/voxprompt"
for f in "$REPO"/app/*.py; do ln -sf "$f" "$site/voxprompt/"; done
ln -sfn "$REPO/models" "$site/voxprompt/models"
ln -sfn "$REPO/export" "$site/voxprompt/export"
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} VOXPROMPT_ASSETS=$BUNDLE/assets PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
{ espeak-ng --version; flite --version | sed -n 1p; nproc; nvidia-smi -L; } 2>&1 | tee "$RESULTS/env.txt" || true
"$PYTHON" -c "from voxprompt.models.tts import *; [print(v.id, len(synthesize(v, 'A quick test.'))) for v in (TRAIN_VOICES[0], Voice('flite', 'slt'), Voice('pico', 'en-US'))]" 2>&1 | tee -a "$RESULTS/env.txt"
time "$PYTHON" -m voxprompt.models.dataset --out /tmp/vp-data --train "$N_TRAIN" --heldout 300 --workers "$(nproc)" 2>&1 | tail -2
"$PYTHON" -m voxprompt.models.train --data /tmp/vp-data --out "$RESULTS" --device "$DEVICE" \
  --deadline-minutes "$DEADLINE_MINUTES" $EXTRA_TRAIN_ARGS > "$RESULTS/train.log" 2>&1
