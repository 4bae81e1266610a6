#!/usr/bin/env bash
# The committed default model's recipe, on this project's 2-core CPU machine (each command resumes
# where it stopped: rerun the script after an interruption). About 14 hours of training in all.
#   run A: 12.5 speech vectors per second, from scratch (stage 1 CTC, stage 2 LM + LoRA + CTC);
#   run B: 6.25 vectors per second (half the LLM's prompt work), its projector widened from run A's
#          and its LoRA adapter continued, with a CTC head that reads 2 frames per vector;
#   run R: run B continued on real voices: the game characters' studio speech (GAME_DEV_CHARACTERS held
#          out), a fresh synthetic set of which 30 % is band-limited like the games, and the asterisk prompts;
#   run D: run R continued with the cutaway lines whose speaker is known, the real lines' augmented copies
#          speed-perturbed, and a context in 30 % of the prompts;
#   run E: run D continued with 3,000 sentences carrying coined words (names, terms no dictionary has),
#          whose prompts list them in a context, to learn to copy a spelling from it;
#   run H: run E continued with SpecAugment on the cached frames (the last tiny.en model);
#   run I: run H moved to Whisper base: its projector's output layer, CTC head and LoRA adapter kept, the
#          projector's input layers trained afresh (stage 1), then stage 2 as run H;
#   run K: run I continued with the pieces of noise the runtime's VAD lets through, weighted up (without
#          them it wrote "A" on a short burst of noise);
#   run L: run K continued, one more pass at a lower rate;
#   run Q: run L continued with new sentences in real voices: the game lines cut at pauses (timed by run
#          L's CTC head) and joined across lines of one speaker (4,000 utterances);
#   run Q2: run Q continued with 4,000 spliced utterances more, at batch 16 (the default model).
# Then: voxprompt export trained $RUNS/q2 --out my-model, or copy $RUNS/q2's files into models/trained/.
set -euo pipefail
DATA=${DATA:-data}
GAME_DATA=${GAME_DATA:-data-games}
CUT_DATA=${CUT_DATA:-data-cut}
RUNS=${RUNS:-runs}
PYTHON=${PYTHON:-python}
common=(--stage2-batch 8 --eval-every 300 --eval-size 20 --checkpoint-every 150 --threads 2)

"$PYTHON" -m voxprompt.models.dataset --out "$DATA" --train 12000 --heldout 300 --workers 2
"$PYTHON" -m voxprompt.models.dataset --out "$GAME_DATA" --train 6000 --heldout 300 --workers 2 --games
"$PYTHON" -m voxprompt.models.dataset --out "$CUT_DATA" --train 6000 --heldout 300 --workers 2 --games --cutaways --coined 3000
train() {  # a finished run is not trained again
  local out=$1; shift
  [ -f "$out/finished" ] && return
  "$PYTHON" -m voxprompt.models.train "${common[@]}" --out "$out" "$@"
  touch "$out/finished"
}
train "$RUNS/a" --data "$DATA" --stack 4 --ctc-upsample 1 --stage2-steps 3000 --deadline-minutes 180
train "$RUNS/b" --data "$DATA" --init-from "$RUNS/a/checkpoint.pt" --stack 8 --ctc-upsample 2 --stage1-steps 150 \
  --stage1-lr 0.0005 --stage2-steps 2500 --stage2-lr 0.0003 --lora-lr 0.0002 --warmup 50 --deadline-minutes 118
train "$RUNS/r" --data "$GAME_DATA" --init-from "$RUNS/b/checkpoint.pt" --stack 8 --ctc-upsample 2 --stage1-steps 0 \
  --splits train,train_real,train_nonspeech,train_game --stage2-steps 2000 --stage2-lr 0.0003 --lora-lr 0.0002 \
  --warmup 50 --bucket-window 0.02 --deadline-minutes 80
train "$RUNS/d" --data "$CUT_DATA" --init-from "$RUNS/r/checkpoint.pt" --stack 8 --ctc-upsample 2 --stage1-steps 0 \
  --splits train,train_real,train_nonspeech,train_game --stage2-steps 2000 --stage2-lr 0.0003 --lora-lr 0.0002 \
  --warmup 50 --bucket-window 0.02 --context-share 0.3 --deadline-minutes 70
train "$RUNS/e" --data "$CUT_DATA" --init-from "$RUNS/d" --stack 8 --ctc-upsample 2 --stage1-steps 0 \
  --splits train,train_real,train_nonspeech,train_game,train_coined --stage2-steps 2000 --stage2-lr 0.0003 \
  --lora-lr 0.0002 --warmup 50 --bucket-window 0.02 --context-share 0.3 --deadline-minutes 60
# Run H: run E continued with SpecAugment on the cached frames (2,156 steps in 80 minutes on 2 AVX-512 cores;
# about 700 on the older 2-core machines, ~7 s a step)
train "$RUNS/h" --data "$CUT_DATA" --init-from "$RUNS/e" --stack 8 --ctc-upsample 2 --stage1-steps 0 \
  --splits train,train_real,train_nonspeech,train_game,train_coined --stage2-steps 2400 --stage2-lr 0.0003 \
  --lora-lr 0.0002 --warmup 50 --bucket-window 0.02 --context-share 0.3 --time-mask 0.2 --channel-mask 0.1 \
  --deadline-minutes 80
# Whisper base's frames cached first, in two processes (13 minutes; training would make them in one)
base_splits=train,train_real,train_nonspeech,train_nonspeech_cut,train_game,train_coined,game_dev,real_dev
for part in 0/2 1/2; do
  "$PYTHON" -m voxprompt.models.features --data "$CUT_DATA" --encoder base --part "$part" --splits "$base_splits" &
done
wait
train "$RUNS/i" --data "$CUT_DATA" --encoder base --init-from "$RUNS/h" --init-encoder tiny.en --stack 8 \
  --ctc-upsample 2 --stage1-steps 500 --stage1-batch 32 --stage1-lr 0.001 \
  --splits train,train_real,train_nonspeech,train_game,train_coined --stage2-steps 2400 --stage2-lr 0.0003 \
  --lora-lr 0.0002 --warmup 50 --bucket-window 0.02 --context-share 0.3 --time-mask 0.2 --channel-mask 0.1 \
  --deadline-minutes 88
train "$RUNS/k" --data "$CUT_DATA" --encoder base --init-from "$RUNS/i" --stack 8 --ctc-upsample 2 --stage1-steps 0 \
  --splits "train,train_real,train_nonspeech*2,train_nonspeech_cut*3,train_game,train_coined" --stage2-steps 600 \
  --stage2-lr 0.0002 --lora-lr 0.0001 --warmup 20 --bucket-window 0.02 --context-share 0.3 --time-mask 0.2 \
  --channel-mask 0.1 --checkpoint-every 100 --deadline-minutes 20
train "$RUNS/l" --data "$CUT_DATA" --encoder base --init-from "$RUNS/k" --stack 8 --ctc-upsample 2 --stage1-steps 0 \
  --splits "train,train_real,train_nonspeech*2,train_nonspeech_cut*3,train_game,train_coined" --stage2-steps 1800 \
  --stage2-lr 0.00015 --lora-lr 0.0001 --warmup 50 --bucket-window 0.02 --context-share 0.3 --time-mask 0.2 \
  --channel-mask 0.1 --eval-every 3000 --deadline-minutes 60
# Runs Q and Q2 were trained on a corpus made without --coined and with 1,200 synthetic clips
# (`dataset --train 1200 --heldout 100 --games --cutaways`), hence no train_coined in their splits.
if [ ! -e "$RUNS/l-model/manifest.json" ]; then
  "$PYTHON" -m voxprompt export trained "$RUNS/l" --out "$RUNS/l-model"
fi
"$PYTHON" -m voxprompt.models.splice --data "$CUT_DATA" --count 4000 --model "$RUNS/l-model"
spliced="train,train_real,train_nonspeech*2,train_nonspeech_cut*3,train_game,train_spliced"
train "$RUNS/q" --data "$CUT_DATA" --encoder base --init-from "$RUNS/l" --stack 8 --ctc-upsample 2 --stage1-steps 0 \
  --splits "$spliced" --stage2-steps 3000 --stage2-lr 0.00015 --lora-lr 0.0001 --warmup 50 --bucket-window 0.02 \
  --context-share 0.3 --time-mask 0.2 --channel-mask 0.1 --eval-every 3000 --deadline-minutes 68
"$PYTHON" -m voxprompt.models.splice --data "$CUT_DATA" --count 8000 --model "$RUNS/l-model"  # the first 4,000 kept
train "$RUNS/q2" --data "$CUT_DATA" --encoder base --init-from "$RUNS/q" --stack 8 --ctc-upsample 2 --stage1-steps 0 \
  --splits "$spliced" --stage2-steps 3000 --stage2-batch 16 --stage2-lr 0.00015 --lora-lr 0.0001 --warmup 50 \
  --bucket-window 0.02 --context-share 0.3 --time-mask 0.2 --channel-mask 0.1 --eval-every 3000 --eval-size 100 \
  --deadline-minutes 62
# Run S4 (session 29, not adopted: game_dev -0.4, -1.2..+0.4): run Q2 at 12.5 speech vectors a second.
# train "$RUNS/s4" --data "$CUT_DATA" --encoder base --init-from "$RUNS/q2" --stack 4 --ctc-upsample 2 \
#   --stage1-steps 0 --splits "$spliced" --stage2-steps 3000 --stage2-batch 16 --stage2-lr 0.0002 --lora-lr 0.0001 \
#   --warmup 50 --bucket-window 0.02 --context-share 0.3 --time-mask 0.2 --channel-mask 0.1 --eval-every 3000 \
#   --eval-size 20 --checkpoint-every 50 --deadline-minutes 95
# Run Q3 (next; session 30 made its data and ran out of time before training): run Q2 continued on 16,000 spliced
# utterances (the first 8,000 are run Q2's where they exist; on a fresh machine, with no splice-times.json, the
# bundled model's CTC head times the lines: 2,393 of train_game's timed, against 2,162 by run L's head). A fresh
# machine makes the corpus of runs Q and Q2 first: `dataset --out "$CUT_DATA" --train 1200 --heldout 100 --workers 2
# --games --cutaways` (~40 minutes), its Whisper base frames (~30), the splice (~5) and the spliced utterances'
# frames (23 h of audio: ~50 minutes in two `features --splits train_spliced --part K/2` processes), so on 2 cores
# the data takes one session and the run the next, or a lent GPU does both (`scripts/train_remote.sh`).
# "$PYTHON" -m voxprompt.models.splice --data "$CUT_DATA" --count 16000
# train "$RUNS/q3" --data "$CUT_DATA" --encoder base --init-from "$RUNS/q2" --stack 8 --ctc-upsample 2 \
#   --stage1-steps 0 --splits "$spliced" --stage2-steps 3000 --stage2-batch 16 --stage2-lr 0.00015 --lora-lr 0.0001 \
#   --warmup 50 --bucket-window 0.02 --context-share 0.3 --time-mask 0.2 --channel-mask 0.1 --eval-every 3000 \
#   --eval-size 100 --checkpoint-every 50 --deadline-minutes 90
