"""Microphone input through PortAudio: a callback that never blocks, a bounded queue, any device rate."""
from __future__ import annotations

import queue
from dataclasses import dataclass

import numpy as np

from voxprompt.audio import SAMPLE_RATE, Resampler


class DeviceError(Exception):
    """No such input device, or the device went away; the message says what to do."""


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    default_samplerate: float
    channels: int


def list_input_devices() -> list[InputDevice]:
    import sounddevice as sd

    return [InputDevice(i, d["name"], d["default_samplerate"], d["max_input_channels"])
            for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def find_device(spec: str | int | None) -> InputDevice:
    """The default input, a device index, or the first device whose name contains `spec`."""
    import sounddevice as sd

    devices = list_input_devices()
    if not devices:
        raise DeviceError("no audio input devices found; connect a microphone (or start PulseAudio)")
    if spec is None or spec == "":
        default = sd.default.device[0]
        return next((d for d in devices if d.index == default), devices[0])
    if isinstance(spec, int) or str(spec).isdigit():
        match = [d for d in devices if d.index == int(spec)]
    else:
        match = [d for d in devices if str(spec).lower() in d.name.lower()]
    if not match:
        names = ", ".join(f"{d.index}: {d.name}" for d in devices)
        raise DeviceError(f"no input device matches {spec!r}; choose one of: {names}")
    return match[0]


class Microphone:
    """Opens `device` at 16 kHz if it can, else at its own rate (44.1 / 48 kHz), resampled on read()."""

    def __init__(self, device: InputDevice, block_ms: int = 20, queue_seconds: float = 30.0):
        import sounddevice as sd

        self.device = device
        try:
            sd.check_input_settings(device=device.index, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
            self.rate = SAMPLE_RATE
        except Exception:
            self.rate = int(device.default_samplerate)
        self._resample = Resampler(self.rate)
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(1, int(queue_seconds * 1000 / block_ms)))
        self.dropped = 0
        self.lost: str | None = None
        self._stream = sd.InputStream(device=device.index, samplerate=self.rate, channels=1, dtype="float32",
                                      blocksize=int(self.rate * block_ms / 1000), callback=self._callback,
                                      finished_callback=self._finished)
        self._stopping = False

    def _callback(self, indata, frames, time_info, status) -> None:
        # Runs on PortAudio's thread: copy and hand over, never wait.
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.dropped += 1

    def _finished(self) -> None:
        if not self._stopping:
            self.lost = f"input device {self.device.name!r} stopped"

    def start(self) -> "Microphone":
        self._stream.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._stream.stop()
        self._stream.close()

    def backlog_seconds(self) -> float:
        return self._queue.qsize() * self._stream.blocksize / self.rate

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        """The next block as 16 kHz mono, or None after `timeout`; DeviceError if the device vanished."""
        try:
            block = self._queue.get(timeout=timeout)
        except queue.Empty:
            if self.lost:
                raise DeviceError(f"{self.lost}; what was said so far is kept") from None
            return None
        return self._resample(block)
