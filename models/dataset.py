"""Speech corpora for training and evaluation, generated offline, cached in shards, resumable.

    python -m voxprompt.models.dataset --out data/ --train 12000

Splits: `train` (TTS voices in TRAIN_VOICES), `train_natural` (the most natural voices, NATURAL_VOICES,
half of it telephone band like the real recordings), `train_short` (isolated words and short fragments:
numbers, ordinals, letters, days...), `train_real` (the real recordings' training prompts,
augmented), `train_coined` (sentences with coined words: names and terms no dictionary has;
models/context.py), `train_nonspeech` (noise, hum, clicks with an empty transcript),
`train_nonspeech_cut` (the pieces of such noise the runtime's VAD lets through, framed as the encoder
reads them),
`heldout` (voices in HELD_OUT, sentences never used in training), `real_dev` (real recordings,
prompts never used in training); with `--games`, `train_game` (studio speech by the game characters
trained on, once as recorded and once augmented) and `game_dev` (the held-out characters, never trained
on: voices no training run has heard; see models/games.py). Each shard is an .npz of int16 audio with
texts and voice ids; a shard that exists is not made again, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from voxprompt.audio import SAMPLE_RATE, load_audio, probe
from voxprompt.models.assets import data_path
from voxprompt.models.augment import AugmentOptions, augment
from voxprompt.models.corpus import coined_texts, short_texts, training_texts
from voxprompt.models.tts import HELD_OUT, NATURAL_VOICES, TRAIN_VOICES, Voice, synthesize

ASTERISK_SOUNDS = data_path("/usr/share/asterisk/sounds/en", "asterisk", "en")
ASTERISK_TEXT = data_path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", "asterisk",
                          "core-sounds-en.txt.gz")
SHARD_SIZE = 500
MAX_SECONDS = 25.0  # the encoder window is 30 s; augmentation adds up to 1 s of silence


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray  # 16 kHz float32
    text: str
    source: str  # voice id or "real:<prompt>"


def real_prompts() -> list[tuple[Path, str]]:
    """The asterisk recordings with their transcripts (real speech, one speaker, 8 kHz)."""
    prompts = []
    for line in gzip.open(ASTERISK_TEXT, "rt", encoding="utf-8", errors="replace"):
        name, _, text = line.partition(":")
        text = text.strip()
        path = ASTERISK_SOUNDS / f"{name.strip()}.wav"
        if not path.exists():  # a copy may hold them as FLAC
            path = path.with_suffix(".flac")
        if text and path.exists() and not name.startswith("silence/") and not text.startswith("["):
            if probe(path).duration <= MAX_SECONDS:
                prompts.append((path, text))
    return prompts


def is_real_dev(path: Path) -> bool:
    """A fixed quarter of the prompts, chosen by name: never trained on."""
    return hashlib.sha256(path.stem.encode()).digest()[0] < 64


def _write_shard(path: Path, utterances: list[Utterance]) -> None:
    audio = [np.clip(u.audio * 32767, -32768, 32767).astype(np.int16) for u in utterances]
    lengths = np.array([len(a) for a in audio])
    tmp = path.with_suffix(".partial.npz")
    np.savez(tmp, audio=np.concatenate(audio), lengths=lengths, texts=np.array([u.text for u in utterances]),
             sources=np.array([u.source for u in utterances]))
    tmp.replace(path)


def read_shard(path: Path) -> list[Utterance]:
    with np.load(path) as data:
        offsets = np.concatenate([[0], np.cumsum(data["lengths"])])
        audio = data["audio"]
        return [Utterance(audio[a:b].astype(np.float32) / 32767, str(t), str(s))
                for a, b, t, s in zip(offsets[:-1], offsets[1:], data["texts"], data["sources"])]


def shards(folder: Path, split: str) -> list[Path]:
    """The split's audio shards (not the feature caches stored beside them)."""
    return sorted(folder.glob(f"{split}-[0-9][0-9][0-9][0-9].npz"))


def read_split(folder: Path, split: str) -> Iterator[Utterance]:
    for shard in shards(folder, split):
        yield from read_shard(shard)


def _synthetic(voices, texts: list[str], seed: int, options: AugmentOptions) -> Iterator[Utterance]:
    """TTS of each text by a voice drawn for it; a voice whose engine fails here is replaced by another."""
    for i, text in enumerate(texts):
        rng = np.random.default_rng([seed, i])
        for _ in range(5):
            voice = voices[int(rng.integers(len(voices)))]
            try:
                speech = synthesize(voice, text, rate=float(rng.uniform(0.8, 1.25)), pitch=float(rng.uniform(0.8, 1.2)),
                                    seed=seed)
            except (OSError, subprocess.CalledProcessError, ImportError, RuntimeError):
                continue
            if len(speech) > 1600:
                yield Utterance(augment(speech, rng, options), text, voice.id)
                break


def _make_shard(path: Path, make, chunk: list, start: int) -> int:
    if not path.exists():
        _write_shard(path, list(make(chunk, start)))
    return len(chunk)


def build_split(out: Path, split: str, items: list, make, progress=None, workers: int = 1,
                shard_size: int = SHARD_SIZE) -> None:
    """Write the split's shards (in parallel processes when workers > 1); existing shards are kept."""
    from concurrent.futures import ProcessPoolExecutor

    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out / f"{split}-{k // shard_size:04d}.npz", make, items[k: k + shard_size], k)
            for k in range(0, len(items), shard_size)]
    if workers <= 1:
        done = (_make_shard(*job) for job in jobs)
        for n in done:
            progress and progress(n)
        return
    with ProcessPoolExecutor(workers) as pool:
        for n in pool.map(_make_shard, *zip(*jobs)):
            progress and progress(n)


def _real_plain(items, start):
    for path, text in items:
        yield Utterance(load_audio(path), text, f"real:{path.stem}")


@dataclass(frozen=True)
class _RealAugmented:
    seed: int

    def __call__(self, items, start):
        for i, (path, text) in enumerate(items):
            rng = np.random.default_rng([self.seed, 7, start + i])
            yield Utterance(augment(load_audio(path), rng, AugmentOptions(p_speed=0.67)), text, f"real:{path.stem}")


@dataclass(frozen=True)
class _Synthetic:
    voices: tuple[Voice, ...]
    seed: int
    options: AugmentOptions = AugmentOptions()

    def __call__(self, texts, start):
        return _synthetic(self.voices, texts, self.seed + start, self.options)


@dataclass(frozen=True)
class _Coined:
    """(sentence, coined words) items, spoken by the training voices; the source names the words."""

    voices: tuple[Voice, ...]
    seed: int
    options: AugmentOptions = AugmentOptions()

    def __call__(self, items, start):
        from voxprompt.models.context import coined_source

        words = dict(items)
        for u in _synthetic(self.voices, [t for t, _ in items], self.seed + start, self.options):
            yield Utterance(u.audio, u.text, coined_source(u.source, words[u.text]))


@dataclass(frozen=True)
class _GameSpeech:
    """(game line, augmented) items: the line as recorded, or with room, noise and level varied."""

    root: Path
    seed: int = 0

    def __call__(self, items, start):
        from voxprompt.models.games import GameArchive

        archive = GameArchive(self.root)
        for i, (line, augmented) in enumerate(items):
            try:
                audio = archive.audio(line)
            except ValueError:  # a stream that does not decode is left out, never passed on as NaN
                continue
            if augmented:
                rng = np.random.default_rng([self.seed, 13, start + i])
                audio = augment(audio, rng, AugmentOptions(p_speed=0.8, p_telephone=0.0, pad_s=(0.05, 0.3)))
            yield Utterance(audio, line.text, f"game:{line.speaker}")


def game_items(out: Path, seed: int, log=print, cutaways: bool = False) -> tuple[Path, list, list]:
    """The unpacked packages' root and the (train, dev) game lines: fetched, normalised, split by character.
    Drascula's lines, of which 5-15 % say something else than their text, are checked against Whisper:
    training lines with tiny.en, development lines with base (so that the tiny.en scored beside ours did
    not choose its own test). FOTAQ's pairs were found sound (ASSETS) and are not checked."""
    from voxprompt.models.games import Dictionary, GameArchive, agreeing, game_root, game_splits

    root = game_root()
    archive = GameArchive(root)
    splits = game_splits(archive.lines(), Dictionary.load(), seed=seed, cutaways=cutaways)
    dropped = dict(splits.dropped)
    kept = {}
    for name, lines, model in (("train", splits.train, "tiny.en"), ("dev", splits.dev, "base")):
        checked = [line for line in lines if line.game == "drascula"]
        agree, dropped[f"{name} lines disagreeing with Whisper {model}"] = agreeing(
            archive, checked, model, out / f"game-agreement-{model}.json", log)
        drop = {line.key for line in checked} - {line.key for line in agree}
        kept[name] = [line for line in lines if line.key not in drop]
    log(f"game lines: {len(kept['train'])} train, {len(kept['dev'])} dev; left out: "
        + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    return root, kept["train"], kept["dev"]


@dataclass(frozen=True)
class _NonSpeech:
    """Noise, hum and clicks with an empty transcript: the model must learn to say nothing."""

    seed: int

    def __call__(self, items, start):
        from voxprompt.models.augment import _coloured_noise

        for i in items:
            rng = np.random.default_rng([self.seed, 11, start + i])
            n = int(rng.uniform(0.8, 6.0) * SAMPLE_RATE)
            kind = int(rng.integers(3))
            if kind == 0:
                x = _coloured_noise(rng, n)
            elif kind == 1:
                t = np.arange(n) / SAMPLE_RATE
                f0 = rng.choice([50.0, 60.0])
                x = np.sin(2 * np.pi * f0 * t) + 0.4 * np.sin(2 * np.pi * 3 * f0 * t) + 0.05 * rng.standard_normal(n)
            else:
                x = 0.01 * rng.standard_normal(n)
                for at in rng.integers(0, n - 200, size=int(rng.integers(2, 12))):
                    x[at: at + 120] += rng.uniform(0.2, 0.9) * np.exp(-np.arange(120) / 20) * rng.standard_normal(120)
            x = x / (np.sqrt(np.mean(x**2)) + 1e-9) * 10 ** (rng.uniform(-45, -12) / 20)
            yield Utterance(np.clip(x, -1, 1).astype(np.float32), "", "nonspeech")


@dataclass(frozen=True)
class _NonSpeechPieces:
    """The pieces of non-speech the runtime's VAD lets through, framed as the encoder reads them.

    Whole noise clips teach silence on 0.8-6 s of noise; the runtime hands the model something else:
    short bursts the VAD passed, with its pre-roll and tail, at any of its strictness settings.
    """

    seed: int

    def __call__(self, items, start):
        from voxprompt.vad import VadOptions, VadSegmenter

        clips = _NonSpeech(self.seed)(items, start)
        for i, clip in zip(items, clips):
            rng = np.random.default_rng([self.seed, 12, start + i])
            pad = lambda: np.zeros(int(rng.uniform(0.2, 1.2) * SAMPLE_RATE), np.float32)
            audio = np.concatenate([pad(), clip.audio, pad()])
            vad = VadSegmenter(VadOptions(aggressiveness=int(rng.integers(4))))
            for segment in [*vad.push(audio), *vad.flush()]:
                yield Utterance(segment.framed().astype(np.float32), "", "nonspeech")


def build_corpus(out: Path, n_train: int, n_heldout: int = 300, seed: int = 0, real_repeats: int = 3,
                 workers: int = 1, n_natural: int = 0, n_short: int = 0, games: bool = False,
                 cutaways: bool = False, n_coined: int = 0) -> None:
    from rich.progress import Progress

    out.mkdir(parents=True, exist_ok=True)
    real = real_prompts()
    real_dev = [(p, t) for p, t in real if is_real_dev(p)]
    real_train = [(p, t) for p, t in real if not is_real_dev(p)]
    held_texts = set(t for _, t in real_dev)
    heldout_texts = training_texts(n_heldout, seed=seed + 1000, exclude=held_texts, template_share=0.3)
    train_texts = training_texts(n_train, seed=seed, exclude=held_texts | set(heldout_texts))
    natural_texts = training_texts(n_natural, seed=seed + 2000, exclude=held_texts | set(heldout_texts))
    short = short_texts(n_short, seed=seed + 3000, exclude=held_texts)
    coined = coined_texts(n_coined, seed=seed + 4000, exclude=held_texts | set(heldout_texts))

    game_root, game_train, game_dev = game_items(out, seed, cutaways=cutaways) if games else (None, [], [])
    rng = random.Random(seed)
    real_train_items = [item for _ in range(real_repeats) for item in real_train]
    rng.shuffle(real_train_items)
    with Progress() as bar:
        for split, items, make in (
            ("real_dev", real_dev, _real_plain),
            ("heldout", heldout_texts, _Synthetic(HELD_OUT, seed + 1000)),
            ("train_real", real_train_items, _RealAugmented(seed)),
            ("train", train_texts, _Synthetic(TRAIN_VOICES, seed, AugmentOptions(p_game_band=0.3 if games else 0.0))),
            ("train_natural", natural_texts, _Synthetic(NATURAL_VOICES, seed + 2000, AugmentOptions(p_telephone=0.5))),
            ("train_short", short, _Synthetic(TRAIN_VOICES + NATURAL_VOICES, seed + 3000, AugmentOptions(p_telephone=0.5))),
            ("train_coined", coined, _Coined(TRAIN_VOICES, seed + 4000, AugmentOptions(p_game_band=0.3))),
            ("train_nonspeech", list(range(max(1, n_train // 30))), _NonSpeech(seed)),
            ("train_nonspeech_cut", list(range(max(1, n_train // 10))), _NonSpeechPieces(seed + 5000)),
            ("game_dev", [(line, False) for line in game_dev], _GameSpeech(game_root)),
            ("train_game", [(line, a) for a in (False, True) for line in game_train], _GameSpeech(game_root, seed)),
        ):
            if not items:
                continue
            task = bar.add_task(split, total=len(items))
            build_split(out, split, items, make, progress=lambda n, task=task: bar.advance(task, n), workers=workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=12000, help="synthetic training utterances")
    parser.add_argument("--natural", type=int, default=0, help="utterances by the most natural voices (Piper, festival...)")
    parser.add_argument("--short", type=int, default=0, help="isolated words and short fragments")
    parser.add_argument("--coined", type=int, default=0,
                        help="sentences with coined words (names, terms), for learning to copy a context's spelling")
    parser.add_argument("--heldout", type=int, default=300, help="held-out-voice utterances")
    parser.add_argument("--games", action="store_true", help="the game characters' speech (train_game, game_dev)")
    parser.add_argument("--cutaways", action="store_true",
                        help="with --games: also the cutaway scenes' lines whose speaker the game data names "
                             "(held-out characters' left out; game_dev unchanged)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    args = parser.parse_args()
    build_corpus(args.out, args.train, args.heldout, args.seed, workers=args.workers, n_natural=args.natural,
                 n_short=args.short, games=args.games, cutaways=args.cutaways, n_coined=args.coined)


if __name__ == "__main__":
    main()
