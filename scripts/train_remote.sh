#!/usr/bin/env bash
# Train on a lent GPU machine that has PyTorch but none of this project's parts, within its call limits.
# scripts/make_train_bundle.sh packs the parts (.carry/p1, p2, ...); each device call copies its part into
# $BUNDLE, and the machine keeps files between calls while it stays warm:
#   call 1:  cp -r .carry/p1/. $BUNDLE/ && scripts/train_remote.sh start
#            installs the wheels, checks the voices, then makes the corpus and its encoder frames in the
#            background (a new session, so it outlives the call)
#   call 2..: cp -r .carry/pK/. $BUNDLE/ && scripts/train_remote.sh check
#            (the checkpoint to continue and the GGUF come in pieces; check imports and reports progress)
#   last:    cp -r .carry/pN/. $BUNDLE/ && RESULTS=$OUT scripts/train_remote.sh train
#            joins the pieces, waits for the corpus, trains until CALL_SECONDS are nearly spent, exports
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=${BUNDLE:-/tmp/vpb}
DATA=${DATA:-/tmp/vp-data}
RESULTS=${RESULTS:-$REPO/runs/remote}
N_TRAIN=${N_TRAIN:-40000}
DEVICE=${DEVICE:-cuda}
CALL_SECONDS=${CALL_SECONDS:-570}  # the train call's own limit: training stops in time to export
EXPORT_SECONDS=${EXPORT_SECONDS:-90}  # kept for the last evaluation and export (about 40 s for 80 clips)
FEATURE_WORKERS=${FEATURE_WORKERS:-4}
TRAIN_ARGS=${TRAIN_ARGS:-}
PYTHON=${PYTHON:-python3}
started=$(date +%s)

lib=$BUNDLE/sys/usr/lib/x86_64-linux-gnu
site=/tmp/vp-site
export PATH=$BUNDLE/sys/usr/bin:$PATH LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-} ESPEAK_DATA_PATH=$lib
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} VOXPROMPT_ASSETS=$BUNDLE/assets PYTHONUNBUFFERED=1

link_package() {  # the package maps app/ -> voxprompt, export/ and models/ -> its subpackages: links do the same
  mkdir -p "$site/voxprompt"
  for f in "$REPO"/app/*.py; do ln -sf "$f" "$site/voxprompt/"; done
  ln -sfn "$REPO/models" "$site/voxprompt/models"
  ln -sfn "$REPO/export" "$site/voxprompt/export"
}

case "${1:-}" in
start)
  if [ "${INSTALL_WHEELS:-1}" = 1 ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$BUNDLE"/wheels/*.whl
  fi
  link_package
  { nproc; nvidia-smi -L || true; espeak-ng --version; } 2>&1
  "$PYTHON" -c "
from voxprompt.models.tts import TRAIN_VOICES, synthesize
import soundfile, soxr, jiwer, gguf, whisper_normalizer.english
print('voice check:', TRAIN_VOICES[0].id, len(synthesize(TRAIN_VOICES[0], 'A quick test, 42 times.')), 'samples')"
  rm -f "$DATA/ready"
  setsid nohup bash -c "
    set -e
    $PYTHON -m voxprompt.models.dataset --out $DATA --train $N_TRAIN --heldout 300 --workers \$(nproc)
    for k in \$(seq 0 $((FEATURE_WORKERS - 1))); do
      $PYTHON -m voxprompt.models.features --data $DATA --device $DEVICE --part \$k/$FEATURE_WORKERS &
    done
    wait
    touch $DATA/ready" > /tmp/vp-prepare.log 2>&1 < /dev/null &
  echo "corpus and frames under way: /tmp/vp-prepare.log"
  ;;
check)  # between the carrying calls: the training imports resolve, and how far the corpus has come
  link_package
  "$PYTHON" -c "import torch, transformers, peft, voxprompt.models.train
print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
  tail -c 3000 /tmp/vp-prepare.log | tr '\r' '\n' | grep -v '^ *$' | tail -4 || true  # empty early on
  ls "$DATA" | wc -l
  ;;
train)
  link_package
  if ls "$BUNDLE"/rest.part-* > /dev/null 2>&1; then
    cat "$BUNDLE"/rest.part-* | tar x -C "$BUNDLE" && rm "$BUNDLE"/rest.part-*
  fi
  while [ ! -f "$DATA/ready" ] && [ $(( $(date +%s) - started )) -lt $((CALL_SECONDS / 2)) ]; do sleep 2; done
  tail -c 2000 /tmp/vp-prepare.log | tr '\r' '\n' | tail -4
  mkdir -p "$RESULTS"
  cp /tmp/vp-prepare.log "$RESULTS/prepare.log"
  init=()
  [ -f "$BUNDLE/init.pt" ] && init=(--init-from "$BUNDLE/init.pt")
  minutes=$("$PYTHON" -c "print(max(1.0, ($CALL_SECONDS - ($(date +%s) - $started) - $EXPORT_SECONDS) / 60))")
  echo "training for $minutes minutes"
  "$PYTHON" -m voxprompt.models.train --data "$DATA" --out "$RESULTS" --device "$DEVICE" \
    --deadline-minutes "$minutes" --checkpoint-every 1000000000 "${init[@]}" $TRAIN_ARGS \
    > "$RESULTS/train.log" 2>&1 || { tail -30 "$RESULTS/train.log"; exit 1; }
  grep -v "^stage 2 step" "$RESULTS/train.log" | tail -20
  ;;
*)
  echo "usage: scripts/train_remote.sh start|check|train (see the comment at its top)" >&2; exit 2
  ;;
esac
