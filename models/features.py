"""Cached speech-encoder frames for training (the encoder is frozen: it runs once per utterance).

Each utterance is padded by the inference padding policy and encoded on its own length, so training
sees exactly the frames inference will produce; with `window`, it is encoded inside Whisper's full
30 s window of zeros, as Whisper was trained, and only its own frames are kept. Frames are stored as
float16 next to the audio shard.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voxprompt.models.dataset import read_shard
from voxprompt.models.frontend import pad_waveform
from voxprompt.models.whisper import InWindow


WINDOW_SUFFIX = "-window"  # cache name of frames encoded in the 30 s window


def features_path(shard: Path, encoder_name: str) -> Path:
    return shard.with_name(f"{shard.stem}.{encoder_name}.frames.npz")


def cache_name(encoder_name: str, window: bool) -> str:
    return encoder_name + (WINDOW_SUFFIX if window else "")


@torch.no_grad()
def encode_shard(shard: Path, encoder: torch.nn.Module, encoder_name: str, device: str = "cpu",
                 window: bool = False) -> Path:
    """Write (once) the encoder frames of every utterance in an audio shard; returns their path."""
    out = features_path(shard, cache_name(encoder_name, window))
    if out.exists():
        return out
    utterances = read_shard(shard)
    padded = [pad_waveform(u.audio) for u in utterances]
    frames: list[np.ndarray | None] = [None] * len(padded)
    if window:
        encoder = InWindow(encoder)
    # Batch only utterances of the same padded length: padding further would change the frames.
    by_length: dict[int, list[int]] = {}
    for i, pcm in enumerate(padded):
        by_length.setdefault(len(pcm), []).append(i)
    for length, indices in by_length.items():
        for k in range(0, len(indices), 32):
            chunk = indices[k: k + 32]
            batch = torch.from_numpy(np.stack([padded[i] for i in chunk])).to(device)
            result = encoder(batch).float().cpu().numpy().astype(np.float16)  # fp32 as at inference
            for i, f in zip(chunk, result):
                frames[i] = f
    lengths = np.array([len(f) for f in frames])
    tmp = out.with_suffix(".partial.npz")
    np.savez(tmp, frames=np.concatenate(frames), lengths=lengths)
    tmp.replace(out)
    return out


def read_frames(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        offsets = np.concatenate([[0], np.cumsum(data["lengths"])])
        frames = data["frames"]
        return [frames[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def main() -> None:
    """Write the frame caches of every shard in a corpus ahead of training (several processes may share it)."""
    import argparse

    from rich.progress import track

    from voxprompt.models.whisper import load_whisper_encoder

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--encoder", default="tiny.en")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--part", default="0/1", help="K/N: this process encodes every N-th shard from the K-th")
    parser.add_argument("--window", action="store_true", help="encode in Whisper's 30 s window")
    parser.add_argument("--splits", default="", help="comma-separated splits to encode (default: all)")
    args = parser.parse_args()
    k, n = (int(x) for x in args.part.split("/"))
    encoder = load_whisper_encoder(args.encoder, args.device)
    audio_shards = sorted(p for p in args.data.glob("*-[0-9][0-9][0-9][0-9].npz")
                          if not args.splits or p.stem.rsplit("-", 1)[0] in args.splits.split(","))
    for shard in track(audio_shards[k::n], description=f"encoding part {args.part}"):
        encode_shard(shard, encoder, args.encoder, args.device, window=args.window)
    print(f"part {args.part}: {len(audio_shards[k::n])} shards encoded")


if __name__ == "__main__":
    main()
