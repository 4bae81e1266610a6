"""Files across machines on Ray (`voxprompt transcribe --ray`): the same events as files.py, decoded by
workers that each load the model once.

The driver reads each file and cuts it with the VAD into chunks of about a minute of speech; the chunks
are tasks for the workers (Ray actors, `num_cpus` = their threads), at most two waiting per worker, so
a long file spreads over every worker and memory stays bounded. Results come back to the driver, which
reports them in file order to the same writers a local run uses. The driver writes, not the workers:
no shared file system is needed (a few laptops have none), a transcript is renamed into place by one
process only, and resuming an interrupted batch works as locally. A worker that dies is restarted by
Ray and its task run again, so a lost worker costs only the chunk it was decoding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from voxprompt.audio import AudioError
from voxprompt.files import CountingReader, FileDone, FileEvent, FileStarted, Progress, SegmentDone, SegmentStarted, TokenText
from voxprompt.llm import FILE_PARALLEL, LlmOptions
from voxprompt.manifest import Manifest, load_manifest
from voxprompt.transcriber import Segment, fit_vad
from voxprompt.vad import SpeechSegment, VadOptions, VadSegmenter

CHUNK_SPEECH_S = 60.0  # speech per task: enough segments to batch, short enough to share out a long file
WAITING_PER_WORKER = 2  # tasks queued at each worker, so it never waits for the driver


@dataclass(frozen=True)
class WorkerOptions:
    model: str | None = None  # a model directory present on every node; None: the bundled model (built once per node)
    device: str = "auto"
    threads: int = 1  # per worker; also the CPUs Ray reserves for it
    parallel: int = FILE_PARALLEL
    beam: int = LlmOptions.beam_size
    adapters: tuple[str, ...] = ()  # --adapter values, installed on every node
    context: str = ""
    fold_adapters: bool = False  # Transcriber's: each node folds them into its cache once


class TranscriberWorker:
    """A Ray actor: one process, one model, loaded once; decodes chunks of VAD segments."""

    def __init__(self, options: WorkerOptions):
        from voxprompt.export.default_model import ensure_default_model
        from voxprompt.transcriber import Transcriber

        model = Path(options.model) if options.model else ensure_default_model()
        self.transcriber = Transcriber.open(model, options.device, options.threads, options.parallel, options.beam,
                                            options.adapters, options.context, options.fold_adapters)

    def transcribe(self, segments: list[SpeechSegment], word_timestamps: bool = False) -> list[Segment]:
        done = {}
        for key, event in self.transcriber.decode(enumerate(segments), word_timestamps):
            if isinstance(event, Segment):
                done[key] = event
        return [done[k] for k in range(len(segments))]

    def pid(self) -> int:
        return os.getpid()


@dataclass
class _File:
    """One input as the driver tracks it: its chunks' results, reported in order."""

    path: Path
    duration: float | None = None  # None: it could not be opened
    chunks: list[list[SpeechSegment]] = field(default_factory=list)
    results: dict[int, list[Segment]] = field(default_factory=dict)
    read: bool = False  # all its chunks are out
    error: Exception | None = None
    started: bool = False
    reported: int = 0


def _last_line(exc: Exception) -> str:
    """The line of a Ray error that says what happened (its messages end with it)."""
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


class RayTranscription:
    """A Ray cluster's workers, started once; `files()` transcribes with them."""

    def __init__(self, model_dir: Path, options: WorkerOptions, workers: int, address: str | None = None,
                 vad_options: VadOptions = VadOptions(), chunk_speech_s: float = CHUNK_SPEECH_S):
        import ray

        self._ray, self.chunk_speech_s = ray, chunk_speech_s
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="warning",
                     configure_logging=True)
        except (ValueError, OSError):  # a bad or unreachable address: Ray's own message says which
            raise
        except Exception as exc:  # Ray raises a bare Exception when its local node does not start in time
            raise RuntimeError(f"the Ray cluster did not start ({_last_line(exc)}); try again when the machine "
                               "is less busy, or transcribe without --ray") from None
        self.manifest: Manifest = load_manifest(model_dir)
        self.vad_options = fit_vad(self.manifest, vad_options)
        self.workers = []
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if workers * options.threads > cpus:  # the actors would wait for CPUs forever
            self.close()
            raise ValueError(f"the Ray cluster has {cpus} CPUs; {workers} workers x {options.threads} threads "
                             "need more: lower --workers or --threads, or add machines")
        remote = ray.remote(num_cpus=options.threads, max_restarts=-1, max_task_retries=3)(TranscriberWorker)
        self.workers = [remote.remote(options) for _ in range(workers)]
        try:
            ray.get([w.pid.remote() for w in self.workers])  # every model loaded before the clock starts
        except ray.exceptions.RayError as exc:
            self.close()
            raise RuntimeError(f"the Ray workers could not load the model: {_last_line(exc)}") from None

    def describe(self) -> str:
        nodes = len([n for n in self._ray.nodes() if n.get("Alive")])
        return f"Ray: {len(self.workers)} workers on {nodes} node{'s' * (nodes > 1)}"

    def files(self, paths: Iterable[str | Path], word_timestamps: bool = False) -> Iterator[FileEvent]:
        """files.transcribe_files' events (no token-by-token text: each segment's comes whole)."""
        ray = self._ray
        order: list[_File] = []
        pending = self._chunks(paths, order)
        in_flight: dict = {}  # task -> (file, chunk index, worker)
        queued = {id(w): 0 for w in self.workers}
        while True:
            while len(in_flight) < WAITING_PER_WORKER * len(self.workers):
                item = next(pending, None)
                if item is None:
                    break
                file, index = item
                worker = min(self.workers, key=lambda w: queued[id(w)])
                queued[id(worker)] += 1
                in_flight[worker.transcribe.remote(file.chunks[index], word_timestamps)] = (file, index, worker)
            yield from self._report(order)
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for task in ready:
                file, index, worker = in_flight.pop(task)
                queued[id(worker)] -= 1
                try:
                    file.results[index] = ray.get(task)
                except ray.exceptions.RayError as exc:  # retries spent: the file fails, the batch goes on
                    file.error = file.error or RuntimeError(f"{file.path}: decoding failed on the cluster ({exc})")
                    file.results[index] = []

    def _chunks(self, paths: Iterable[str | Path], order: list[_File]) -> Iterator[tuple[_File, int]]:
        for name in paths:
            file = _File(Path(name))
            order.append(file)
            chunk: list[SpeechSegment] = []
            try:
                reader = CountingReader(name)
                file.duration = reader.duration()
                vad = VadSegmenter(self.vad_options)
                for block in reader.blocks():
                    for segment in vad.push(block):
                        chunk.append(segment)
                        if sum(s.duration for s in chunk) >= self.chunk_speech_s:
                            file.chunks.append(chunk)
                            chunk = []
                            yield file, len(file.chunks) - 1
                chunk += list(vad.flush())
            except AudioError as exc:
                file.error = exc
            if chunk:
                file.chunks.append(chunk)
                yield file, len(file.chunks) - 1
            file.read = True

    def _report(self, order: list[_File]) -> Iterator[FileEvent]:
        while order:
            file = order[0]
            if not file.started and file.duration is not None:
                file.started = True
                yield FileStarted(file.path, file.duration)
            while file.reported in file.results:
                for speech, segment in zip(file.chunks[file.reported], file.results.pop(file.reported)):
                    yield SegmentStarted(file.path, speech)
                    if segment.text:
                        yield TokenText(file.path, segment.text)
                    yield SegmentDone(file.path, segment)
                    yield Progress(file.path, segment.end)
                file.chunks[file.reported] = []  # its audio is done with: a long file's memory stays bounded
                file.reported += 1
            if not (file.read and file.reported == len(file.chunks)):
                return
            order.pop(0)
            yield FileDone(file.path, file.error)

    def close(self) -> None:
        for worker in self.workers:
            self._ray.kill(worker)
        self._ray.shutdown()
