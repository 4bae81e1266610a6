"""`voxprompt`: transcribe files, export models."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from voxprompt.audio import AUDIO_SUFFIXES
from voxprompt.llm import FILE_PARALLEL, LlmOptions
from voxprompt.manifest import ModelError
from voxprompt.writers import FORMATS, format_timestamp, open_writer


def _error(message: str) -> None:
    print(f"voxprompt: error: {message}", file=sys.stderr)


def _log(message: str) -> None:
    print(f"voxprompt: {message}", file=sys.stderr)


def _resolve_model(model: str | None) -> Path:
    if model:
        return Path(model)
    from voxprompt.export.default_model import ensure_default_model

    return ensure_default_model(log=_log)


def _load_transcriber(args, parallel: int = 1, signals=None):
    """The model (built on first use), loaded with Ctrl-C and SIGTERM held while llama.cpp loads it."""
    from contextlib import nullcontext

    from voxprompt.transcriber import Transcriber

    model_dir = _resolve_model(args.model)  # a first build takes minutes: a signal stops it at once
    with signals.held() if signals is not None else nullcontext():
        return Transcriber.open(model_dir, getattr(args, "device_kind", args.device), args.threads, parallel,
                                args.beam, adapters=args.adapter, context=args.context,
                                fold_adapters=_fold_adapters(args), log=_log)


def _fold_adapters(args) -> bool:
    """Files fold their adapters into the weights (no cost per token); dictation switches them live."""
    return args.command == "transcribe" and not args.adapters_at_load


MAX_CONTEXT_CHARS = 1000  # a context is a few sentences or a list of words, not a document


def _domain_options(args) -> str | None:
    """--hotwords folded into --context (its short form); an error message, or None when they are usable."""
    hotwords = ", ".join(w.strip() for w in (args.hotwords or "").split(",") if w.strip())
    args.context = " ".join(filter(None, [" ".join((args.context or "").split()), hotwords]))
    if len(args.context) > MAX_CONTEXT_CHARS:
        return (f"--context/--hotwords: {len(args.context)} characters, at most {MAX_CONTEXT_CHARS}; "
                "keep the words a recording may contain, or make an adapter from a longer text (`voxprompt adapt`)")
    return None


class _Display:
    """Streams tokens to the terminal; on a terminal a long file also gets a progress bar."""

    def __init__(self, console, live_progress: bool):
        self.console = console
        self.live_progress = live_progress
        self.progress = None
        self._line = ""

    def start_file(self, path: Path, duration: float):
        from rich.markup import escape

        from voxprompt.outputs import printable

        self.console.print(f"[bold]{escape(printable(path))}[/] ({duration:.1f} s)", highlight=False)
        if self.live_progress and duration > 30:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.completed:.0f}/{task.total:.0f} s"), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.task = self.progress.add_task(path.name, total=duration)
            self.progress.start()

    def segment_start(self, segment):
        self._line = f"[{format_timestamp(segment.start_s)} -> {format_timestamp(segment.end_s)}] "
        if self.progress is None:
            self.console.file.write(self._line)
            self.console.file.flush()

    def token(self, text: str):
        if self.progress is None:
            self.console.file.write(text)
            self.console.file.flush()
        else:
            self._line += text
            self.progress.update(self.task, description=self._line[-80:])

    def segment_end(self, segment):
        if self.progress is None:
            self.console.file.write("\n")
            self.console.file.flush()
        else:
            self.progress.console.print(self._line, highlight=False, markup=False)

    def advance(self, seconds: float):
        if self.progress is not None:
            self.progress.update(self.task, completed=seconds)

    def end_file(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


@dataclass
class _Tally:
    """What a batch did, for the summary line at its end."""

    done: int = 0
    skipped: int = 0
    failed: dict = field(default_factory=dict)  # path -> reason
    audio_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> str:
        wall = time.perf_counter() - self.started
        rtf = f", real-time factor {wall / self.audio_s:.3f}" if self.audio_s else ""
        return (f"{self.done} transcribed, {self.skipped} skipped (already complete), {len(self.failed)} failed; "
                f"{self.audio_s / 3600:.2f} h of audio in {wall / 60:.1f} min{rtf}")


def cmd_transcribe(args) -> int:
    from rich.console import Console

    from voxprompt.files import FileDone, FileStarted
    from voxprompt.outputs import (OutputError, find_inputs, is_complete, output_paths, prepare_output_dir,
                                   printable, remove_stale_partials)
    from voxprompt.signals import StopRequested, StopSignals

    problem = _domain_options(args)
    if problem:
        _error(problem)
        return 2
    inputs = find_inputs(args.files, args.recursive)
    if not inputs:
        _error(f"no audio files ({', '.join(sorted(s[1:] for s in AUDIO_SUFFIXES))}) in {' '.join(args.files)}")
        return 2
    outputs: dict[Path, Path] = {}
    if args.output_dir:
        try:  # before the model loads: a bad folder is known at once
            prepare_output_dir(Path(args.output_dir))
        except OutputError as exc:
            _error(str(exc))
            return 2
        outputs = output_paths(inputs, Path(args.output_dir), args.format)
        for path in outputs.values():
            remove_stale_partials(path)
    console = Console(file=sys.stdout, highlight=False)
    display = _Display(console, live_progress=sys.stdout.isatty() and not args.quiet)
    show = not args.quiet
    tally = _Tally()
    writer = None
    with StopSignals() as signals:
        try:
            engine = _transcription_engine(args, signals)
        except ImportError as exc:
            if args.ray is None:
                raise
            _error(f"{exc.name or exc} is needed for --ray: pip install 'voxprompt[ray]'")
            return 2
        except (ModelError, OSError, ValueError, RuntimeError) as exc:
            _error(str(exc))
            return 2
        except StopRequested as stop:
            _error(f"stopped ({stop}) before anything was transcribed")
            return stop.exit_code
        _log(engine.describe())
        if args.word_timestamps and engine.manifest.ctc is None:
            engine.close()
            _error("--word-timestamps needs the model's CTC head (ctc.npz), which this model lacks; "
                   "export it again from its training run, or leave the option out")
            return 2
        run = {"model": engine.manifest.model_id, "beam": args.beam}
        if args.adapter or args.context:  # a resumed batch redoes transcripts made with other ones
            run.update(adapters=list(args.adapter), context=args.context)
        if args.word_timestamps:  # a resumed batch redoes transcripts made without them
            run["word_timestamps"] = True
        todo = [i.path for i in inputs]
        if outputs and args.recursive and not args.overwrite:  # an archive resumes; files named are redone
            todo = [path for path in todo if not is_complete(outputs[path], run)]
            tally.skipped = len(inputs) - len(todo)
            if tally.skipped:
                _log(f"skipping {tally.skipped} of {len(inputs)} files whose transcripts are complete "
                     "(--overwrite redoes them)")
        try:
            for event in engine.files(todo, args.word_timestamps):
                if event.path in tally.failed:
                    continue  # its output failed: the rest of its segments have nowhere to go
                try:
                    writer = _on_file_event(event, display, show, outputs, writer, args, run)
                except OutputError as exc:
                    _error(str(exc))
                    tally.failed[event.path] = str(exc)
                    writer = None
                    display.end_file()
                    continue
                if isinstance(event, FileStarted):
                    tally.audio_s += event.duration
                elif isinstance(event, FileDone) and event.error is not None:
                    _error(str(event.error))
                    tally.failed[event.path] = str(event.error)
                elif isinstance(event, FileDone):
                    tally.done += 1
        except StopRequested as stop:
            display.end_file()
            where = "the output above"
            kept = writer.abort(keep=True) if writer is not None else None
            if kept is not None:
                where = printable(kept)
            _error(f"interrupted ({stop}); what was transcribed of the current file is in {where}; "
                   "finished transcripts are complete (run the same command again to resume)")
            return stop.exit_code
        finally:
            engine.close()
    if len(inputs) > 1:
        _log(tally.summary())
    if tally.failed:
        _error(f"{len(tally.failed)} of {len(inputs)} files failed: " +
               "; ".join(printable(path.name) for path in tally.failed))
    return 1 if tally.failed else 0


class _LocalEngine:
    """This process's own model: `voxprompt transcribe` without --ray."""

    def __init__(self, transcriber):
        self.transcriber, self.manifest = transcriber, transcriber.manifest

    def describe(self) -> str:
        return self.transcriber.describe_devices()

    def files(self, paths, word_timestamps: bool = False):
        from voxprompt.files import transcribe_files

        return transcribe_files(self.transcriber, paths, word_timestamps)

    def close(self) -> None:
        self.transcriber.close()


def _transcription_engine(args, signals):
    """The model loaded here, or Ray workers that each load it (--ray): both give files' events."""
    if args.ray is None:
        return _LocalEngine(_load_transcriber(args, parallel=args.parallel, signals=signals))
    from voxprompt.ray_batch import RayTranscription, WorkerOptions

    options = WorkerOptions(args.model, args.device, args.threads or 1, args.parallel, args.beam,
                            tuple(args.adapter), args.context, _fold_adapters(args))
    with signals.held():
        return RayTranscription(_resolve_model(args.model), options, args.workers,
                                address=None if args.ray == "local" else args.ray)


def _on_file_event(event, display: "_Display", show: bool, outputs: dict, writer, args, run: dict):
    """Show one transcription event and write it; returns the open writer (None between files)."""
    from voxprompt.files import FileDone, FileStarted, Progress, SegmentDone, SegmentStarted, TokenText
    from voxprompt.outputs import printable

    if isinstance(event, FileStarted):
        display.start_file(event.path, event.duration)
        if not outputs:
            return None
        return open_writer(args.format, outputs[event.path], event.path, run, args.word_timestamps)
    if isinstance(event, SegmentStarted) and show:
        display.segment_start(event.speech)
    elif isinstance(event, TokenText) and show:
        display.token(event.text)
    elif isinstance(event, SegmentDone):
        if show:
            display.segment_end(event.segment)
        if writer is not None:
            writer.add(event.segment)
    elif isinstance(event, Progress):
        display.advance(event.seconds)
    elif isinstance(event, FileDone):
        display.end_file()
        if writer is not None:
            if event.error is not None:  # an unreadable stretch: keep what came before it, marked partial
                kept = writer.abort(keep=True)
                if kept is not None:
                    _log(f"what was transcribed before the error is in {printable(kept)}")
            else:
                writer.close()
                _log(f"wrote {printable(writer.path)} ({writer.count} segments)")
        return None
    return writer


def cmd_export(args) -> int:
    try:
        out = _export(args)
    except (ModelError, ValueError, RuntimeError, OSError) as exc:
        _error(str(exc))
        return 2
    except ImportError as exc:
        _error(f"{exc.name or exc} is needed to export PyTorch checkpoints: pip install 'voxprompt[torch]'")
        return 2
    _log(f"model written to {out}")
    return 0


def _export(args) -> Path:
    """The export routes: the default model, a voxprompt training run, the Nue-ASR layout, Hugging Face parts."""
    if args.source == "default":
        from voxprompt.export.default_model import DEFAULT_ENCODER, build_default_model

        return build_default_model(args.out, encoder=args.encoder or DEFAULT_ENCODER, quant=args.quant, log=_log)
    if args.path is None and args.source != "hf":
        raise ValueError(f"`voxprompt export {args.source}` needs the checkpoint directory, e.g. "
                         f"`voxprompt export {args.source} DIR --out MODEL_DIR`")
    if args.source == "trained":
        from voxprompt.export.default_model import build_default_model, trained_config

        config = trained_config(Path(args.path))
        if not config:
            raise ValueError(f"{args.path}: no train-config.json; point at a `voxprompt.models.train --out` folder")
        encoder = config["encoder"]
        return build_default_model(args.out, encoder=encoder, quant=args.quant, log=_log, trained=Path(args.path))
    if args.source == "nue-asr":
        from voxprompt.export.nue_asr import export_nue_asr

        return export_nue_asr(args.path, args.out, quant=args.quant, log=_log)
    from voxprompt.export.hf import export_hf

    if not (args.encoder and args.projector and args.llm):
        raise ValueError("`voxprompt export hf` needs --encoder DIR, --projector FILE and --llm DIR")
    return export_hf(args.encoder, args.projector, args.llm, args.out, quant=args.quant, log=_log)


def cmd_dictate(args) -> int:
    import json
    import threading

    from voxprompt.dictation import Failed, Final, LiveDictation, Partial, Stopped
    from voxprompt.journal import Journal
    from voxprompt.microphone import DeviceError, find_device
    from voxprompt.signals import StopRequested, StopSignals

    if args.list_devices:
        from voxprompt.microphone import list_input_devices

        for d in list_input_devices():
            print(f"{d.index}: {d.name} ({d.default_samplerate:.0f} Hz, {d.channels} ch)")
        return 0
    problem = _domain_options(args)
    if problem:
        _error(problem)
        return 2
    if args.journal is None:
        from platformdirs import user_data_dir

        args.journal = str(Path(user_data_dir("voxprompt")) / "journal.txt")
    with StopSignals() as signals:
        try:
            device = find_device(args.device)
            transcriber = _load_transcriber(args, signals=signals)
        except (DeviceError, ModelError, OSError, ValueError, RuntimeError) as exc:
            _error(str(exc))
            return 2
        except StopRequested as stop:
            return stop.exit_code
    if not args.no_ui:  # the app handles its own keys and SIGTERM
        from voxprompt.ui import DictationApp

        DictationApp(transcriber, device, Path(args.journal)).run()
        _log(f"final lines are in {args.journal}")
        return 0

    with StopSignals() as signals:
        done = threading.Event()
        failed: list[str] = []

        def on_event(event) -> None:
            if isinstance(event, Failed):
                failed.append(event.message)
            elif isinstance(event, Stopped):
                done.set()
            elif args.jsonl and isinstance(event, (Partial, Final)):
                print(json.dumps(event.to_json()), flush=True)
            elif isinstance(event, Final) and event.text:
                print(event.text, flush=True)

        journal = Journal(args.journal)
        dictation = LiveDictation(transcriber, device, journal, on_event)
        code = 0
        try:
            dictation.start()
            _log(f"listening on {device.name} ({dictation.microphone.rate} Hz); "
                 f"{transcriber.describe_devices()}; Ctrl-C ends")
            while not done.wait(0.2):
                pass
        except DeviceError as exc:
            failed.append(str(exc))
        except StopRequested as stop:
            code = 0 if stop.signum == signal.SIGINT else stop.exit_code  # Ctrl-C is how dictation ends
        finally:
            with signals.held(raise_after=False):  # the open utterance is committed whatever comes next
                dictation.stop()
                journal.close()
    if failed:
        _error(f"{failed[0]}; final lines are in {args.journal}")
        return 1
    _log(f"final lines are in {args.journal}")
    return code


def cmd_adapters(args) -> int:
    from voxprompt.adapters import adapters_dir, installed_adapters

    found = installed_adapters()
    if not found:
        print(f"no adapters in {adapters_dir()}; make one with `voxprompt adapt --text FILE --out NAME`")
        return 0
    current = None
    try:
        from voxprompt.export.default_model import default_model_dir
        from voxprompt.manifest import load_manifest

        current = load_manifest(default_model_dir(), verify=False).adapter_base_id
    except (ModelError, OSError):
        pass
    print(f"adapters in {adapters_dir()}:")
    for info in found:
        fits = "" if current is None else ("  (for the default model)" if info.base_model_id == current
                                           else "  (for another model)")
        terms = f", {len(info.terms)} terms" if info.terms else ""
        print(f"  {info.name}: {info.sentences} sentences{terms}, model {info.base_model_id}{fits}")
    return 0


def cmd_adapt(args) -> int:
    import re

    from voxprompt.adapters import ADAPTER_MANIFEST, adapters_dir

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", args.out):
        _error(f"--out {args.out!r}: an adapter's name is letters, digits, '.', '_' or '-' (at most 64)")
        return 2
    for option, path in (("--text", args.text), ("--terms", args.terms)):
        if path and not Path(path).is_file():
            _error(f"{option} {path}: no such file")
            return 2
    if not (args.text or args.terms):
        _error("give --text FILE (sentences of your domain) and/or --terms FILE (one term per line)")
        return 2
    if args.layers < 0:
        _error(f"--layers {args.layers}: give how many of the LLM's last layers to adapt (0: all)")
        return 2
    folder = adapters_dir() / args.out
    if (folder / ADAPTER_MANIFEST).exists() and not args.overwrite:
        _error(f"adapter {args.out} exists ({folder}); use it with --adapter {args.out}, or --overwrite to make it again")
        return 2
    if args.overwrite and folder.exists():
        import shutil

        shutil.rmtree(folder)
    try:
        from voxprompt.models.adapt import adapt
    except ImportError as exc:
        _error(f"{exc.name or exc} is needed to train adapters: pip install 'voxprompt[torch]'")
        return 2
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.manifest import load_manifest

    try:
        base_id = load_manifest(ensure_default_model(log=_log), verify=False).adapter_base_id
        out = adapt(args.out, Path(args.text) if args.text else None, Path(args.terms) if args.terms else None,
                    adapters_dir(), base_id, minutes=args.minutes, threads=args.threads, log=_log,
                    layers=args.layers)
    except (ValueError, TimeoutError, OSError, ModelError) as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error(f"interrupted; what was done is kept in {folder / 'work'}: run the same command again to resume")
        return 130
    _log(f"adapter written to {out}; use it with --adapter {args.out}")
    return 0


def _add_domain_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapter", action="append", default=[], metavar="NAME[:SCALE]",
                   help="a domain adapter made by `voxprompt adapt` (repeatable; SCALE 0-4, default 1)")
    p.add_argument("--context", default="", metavar="TEXT",
                   help="text the model reads before the speech: the topic, names and words it may contain")
    p.add_argument("--hotwords", default="", metavar='"A, B"',
                   help="words the speech may contain, comma-separated (the short form of --context)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxprompt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe audio files (wav, flac, ogg; any rate and channels)")
    t.add_argument("files", nargs="+", metavar="FILE", help="audio files, or folders with --recursive")
    t.add_argument("--recursive", "-r", action="store_true",
                   help="transcribe the audio files below each folder given; with --output-dir, a run started "
                        "again skips files whose transcripts are complete")
    t.add_argument("--overwrite", action="store_true", help="with --recursive: redo transcripts that are already complete")
    t.add_argument("--format", choices=FORMATS, default="txt", help="transcript format (default: txt)")
    t.add_argument("--output-dir", metavar="DIR", help="write DIR/<stem>.<format> for each file")
    t.add_argument("--word-timestamps", action="store_true",
                   help="time each word (from the model's CTC head): JSON gets every word's start and end, "
                        "SRT/VTT get short cues cut at word times (at most 42 characters a line, 2 lines)")
    t.add_argument("--model", metavar="DIR", help="an exported model directory (default: the bundled model)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the encoder and LLM run (default: GPU when available)")
    t.add_argument("--threads", type=int, default=0, help="CPU threads (default: one per physical core)")
    t.add_argument("--parallel", type=int, default=FILE_PARALLEL, metavar="N",
                   help=f"speech segments decoded together, across files too (default: {FILE_PARALLEL}; 1 is one at a time)")
    t.add_argument("--beam", type=int, default=LlmOptions.beam_size, metavar="N",
                   help=f"hypotheses kept per segment (default: {LlmOptions.beam_size}; 1 is greedy, about twice as fast)")
    t.add_argument("--quiet", action="store_true", help="do not print the transcript to the terminal")
    t.add_argument("--adapters-at-load", action="store_true",
                   help="apply --adapter through llama.cpp's LoRA at load instead of folding it into a cached copy "
                        "of the weights (no one-off fold of a few seconds and 145 MB of cache; decoding 20-35 %% slower)")
    t.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="decode on a Ray cluster's workers (ADDRESS: a running cluster's, e.g. auto or "
                        "10.0.0.5:6379; none: a local one); this machine reads the audio and writes the "
                        "transcripts; needs pip install 'voxprompt[ray]'")
    t.add_argument("--workers", type=int, default=2, metavar="N",
                   help="with --ray: worker processes, each with its own model and --threads CPUs (default: 2)")
    _add_domain_options(t)
    t.set_defaults(func=cmd_transcribe)

    from voxprompt.export.gguf_llm import QUANTIZATIONS

    e = sub.add_parser("export", help="build a model directory (encoder.onnx, llm.gguf, manifest.json)",
                       description="default: the bundled model; trained RUN: a voxprompt training run's output; "
                                   "nue-asr CKPT: the paper authors' checkpoint layout; hf: a Hugging Face "
                                   "speech encoder + a voxprompt projector + a Hugging Face causal LM")
    e.add_argument("source", nargs="?", choices=("default", "trained", "nue-asr", "hf"), default="default")
    e.add_argument("path", nargs="?", metavar="CHECKPOINT_DIR", help="for trained and nue-asr")
    e.add_argument("--out", required=True, metavar="DIR", help="the model directory to write")
    e.add_argument("--encoder", metavar="NAME|DIR",
                   help="default: Whisper tiny.en or base; hf: a transformers HuBERT/wav2vec2/WavLM/Whisper directory")
    e.add_argument("--projector", metavar="FILE", help="hf: a projector .npz (from voxprompt training)")
    e.add_argument("--llm", metavar="DIR", help="hf: a transformers causal LM directory (Llama, GPT-NeoX, Qwen2, Gemma)")
    e.add_argument("--quant", choices=tuple(QUANTIZATIONS), default="q8_0", help="LLM quantisation (default: q8_0)")
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("dictate", help="live dictation from a microphone (Textual app, or --no-ui)")
    d.add_argument("--device", help="input device: index or part of its name (default: the system default)")
    d.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    d.add_argument("--no-ui", action="store_true", help="print final lines to stdout instead of the app")
    d.add_argument("--jsonl", action="store_true", help="with --no-ui: partial and final events as JSON lines")
    d.add_argument("--journal", metavar="FILE", help="where final lines are appended (default: user data dir)")
    d.add_argument("--model", metavar="DIR", help="an exported model directory (default: the bundled model)")
    d.add_argument("--threads", type=int, default=0, help="CPU threads (default: one per physical core)")
    d.add_argument("--beam", type=int, default=LlmOptions.beam_size, metavar="N",
                   help=f"hypotheses kept per segment (default: {LlmOptions.beam_size}; 1 is greedy, about twice as fast)")
    _add_domain_options(d)
    d.set_defaults(func=cmd_dictate, device_kind="auto")

    a = sub.add_parser("adapters", help="list the domain adapters installed (made by `voxprompt adapt`)")
    a.set_defaults(func=cmd_adapters)

    m = sub.add_parser("adapt", help="make a domain adapter from your text (sentences and/or terms); "
                                     "needs pip install 'voxprompt[torch]'")
    m.add_argument("--text", metavar="FILE", help="sentences of your domain (any text; split into sentences)")
    m.add_argument("--terms", metavar="FILE", help="terms, one per line: spoken in sentences made around them")
    m.add_argument("--out", required=True, metavar="NAME", help="the adapter's name (then: --adapter NAME)")
    m.add_argument("--minutes", type=float, default=20.0,
                   help="time budget, speaking the text included (default: 20); an interrupted run resumes")
    m.add_argument("--threads", type=int, default=0, help="CPU threads for training (default: all cores)")
    m.add_argument("--layers", type=int, default=0, metavar="N",
                   help="adapt only the LLM's last N layers (of 30): a lighter adapter that learns less "
                        "(6: +1 %% transcription time instead of +18 %%); default: all")
    m.add_argument("--overwrite", action="store_true", help="make the adapter again if it exists")
    m.set_defaults(func=cmd_adapt)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
