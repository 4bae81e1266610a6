"""Measurement: does training the top of the Whisper encoder help the bridge? (README, "Is the encoder the limit?")

    python scripts/exp_encoder_tail.py --data <corpus> --cut 1 --tail-lr 1e-4   # last block trained
    python scripts/exp_encoder_tail.py --data <corpus> --cut 1 --tail-lr 0      # the same, frozen (control)

CTC-only stage 1 as in models/train.py, but the frames are cached below the encoder's last `cut` blocks,
which run in the loop (with a mask over padded frames) and train at `tail-lr` alongside the projector.
Prints CTC-greedy WER on held-out voices and the real dev clips every 400 steps.
"""
import argparse, json, random, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
from torch import nn
from voxprompt.models.train import CtcHead, ctc_loss, lr_at, load_llm, Example, _pad_frames
from voxprompt.models.dataset import read_shard, shards
from voxprompt.models.features import encode_shard, read_frames
from voxprompt.models.evaluate import wer
from voxprompt.models.speech_llm import Projector
from voxprompt.models.projector import ProjectorDims
from voxprompt.models.whisper import load_whisper_encoder

ap = argparse.ArgumentParser()
ap.add_argument("--data", type=Path, default=Path("/tmp/data_sub"))
ap.add_argument("--cut", type=int, default=1)
ap.add_argument("--steps", type=int, default=800)
ap.add_argument("--tail-lr", type=float, default=1e-4)
ap.add_argument("--out", type=Path, default=Path("/tmp/exp_tail"))
a = ap.parse_args()
torch.manual_seed(0); torch.set_num_threads(2)
enc = load_whisper_encoder("tiny.en")
n = a.cut

class Head(nn.Module):
    def __init__(self, e):
        super().__init__(); self.e = e
    def forward(self, pcm):
        mel = self.e.log_mel(pcm)
        x = F.gelu(self.e.conv2(F.gelu(self.e.conv1(mel)))).transpose(1, 2)
        x = x + self.e.positions[: x.shape[1]]
        for attn, ffn in list(self.e.blocks)[:-n]:
            x = ffn(attn(x))
        return x

class Tail(nn.Module):
    def __init__(self, e):
        super().__init__(); self.blocks = nn.ModuleList(list(e.blocks)[-n:]); self.ln_post = e.ln_post
    def forward(self, x, lengths_frames=None):
        mask = None
        if lengths_frames is not None:
            t = x.shape[1]
            mask = (torch.arange(t)[None, :] < lengths_frames[:, None])[:, None, None, :]
        for attn, ffn in self.blocks:
            x = ffn(attn(x, mask=mask))
        return self.ln_post(x)

name = f"tiny.en-cut{n}"
head = Head(enc).eval()
llm, tok = load_llm("cpu")
def load(split):
    out = []
    with torch.no_grad():
        for sh in shards(a.data, split):
            fr = read_frames(encode_shard(sh, head, name, "cpu"))
            for f, u in zip(fr, read_shard(sh)):
                out.append(Example(f, tok(u.text, add_special_tokens=False)["input_ids"], u.text, u.source))
    return out
t0 = time.time()
train = [e for s in ("train", "train_real", "train_nonspeech") for e in load(s)]
heldout, real = load("heldout")[:138], load("real_dev")[:138]
print(f"features {time.time()-t0:.0f} s, {len(train)} train", flush=True)
tail = Tail(enc).train()
proj = Projector(ProjectorDims(8, 384, 1024, 576))
vocab = sorted({t for e in train for t in e.tokens})
ctc = CtcHead(llm.get_input_embeddings().weight, vocab, 2)
del llm
groups = [{"params": list(proj.parameters()) + list(ctc.parameters()), "base": 1e-3}]
if a.tail_lr > 0:
    groups.append({"params": list(tail.parameters()), "base": a.tail_lr})
else:
    tail.requires_grad_(False)
opt = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01)
rng = random.Random(0)

def ctc_greedy(examples):
    inv = {i: t for t, i in ctc.index.items()}; outs = []
    tail.eval()
    with torch.no_grad():
        for e in examples:
            x = tail(torch.from_numpy(e.frames.astype(np.float32))[None])
            best = ctc(proj(x))[0].argmax(-1).tolist()
            ids = [inv[c] for k, c in enumerate(best) if c != 0 and (k == 0 or c != best[k - 1])]
            outs.append(tok.decode(ids))
    tail.train()
    return outs

hist = []
t0 = time.time()
for step in range(a.steps):
    for g in opt.param_groups:
        g["lr"] = lr_at(step, a.steps, g["base"], 100)
    batch = [train[rng.randrange(len(train))] for _ in range(32)]
    frames, lengths = _pad_frames(batch, 8, "cpu")
    lf = torch.tensor([len(e.frames) for e in batch])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ctc_loss(ctc, proj(tail(frames, lf)), lengths, batch)
    opt.zero_grad(set_to_none=True); loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0); opt.step()
    if step % 50 == 0:
        print(f"step {step} ctc {loss.item():.3f} {(time.time()-t0)/(step+1):.2f} s/step", flush=True)
    if (step + 1) % 400 == 0:
        row = {"step": step + 1, "heldout_ctc_wer": wer([e.text for e in heldout], ctc_greedy(heldout)),
               "real_dev_ctc_wer": wer([e.text for e in real], ctc_greedy(real))}
        hist.append(row); print(json.dumps(row), flush=True)
a.out.mkdir(parents=True, exist_ok=True)
(a.out / f"metrics-cut{n}-lr{a.tail_lr}.json").write_text(json.dumps(hist))
