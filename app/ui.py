"""`voxprompt dictate`: the Textual app over the dictation engine."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Header, Label, ProgressBar, RichLog, Select, Static

from voxprompt.dictation import (AdaptersChanged, DictationEvent, DictationOptions, Failed, Final, Level, LiveDictation,
                                 Partial)
from voxprompt.journal import Journal
from voxprompt.microphone import InputDevice, list_input_devices


class EngineEvent(Message):
    """A dictation event, posted from the engine's thread (never waits for the UI: a stop that joins the
    engine from the UI thread must not deadlock on the engine's last events)."""

    def __init__(self, event: DictationEvent):
        super().__init__()
        self.event = event


class DictationApp(App):
    """Speak; the partial line follows you, final lines are committed (and journaled) when you pause."""

    TITLE = "voxprompt dictate"
    CSS = """
    #top { height: 3; }
    #device { width: 1fr; }
    #meter { width: 30; padding: 1 1; }
    #speech { width: 14; padding: 1 1; }
    #partial { height: 3; color: $text-muted; padding: 0 1; border: round $primary; }
    #finals { border: round $secondary; }
    #status { height: 1; padding: 0 1; }
    """
    # priority: the footer's keys work whichever widget has the focus (the device picker took `q`)
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume", priority=True),
        Binding("c", "copy_last", "Copy last", priority=True),
        Binding("a", "copy_all", "Copy all", priority=True),
        Binding("s", "save", "Save", priority=True),
        Binding("x", "clear", "Clear", priority=True),
        Binding("d", "next_adapters", "Adapter", priority=True),
        Binding("q", "quit", "Quit", priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]
    AUTO_FOCUS = "#finals"
    paused: reactive[bool] = reactive(False)

    def __init__(self, transcriber, device: InputDevice, journal_path: Path, options: DictationOptions = DictationOptions()):
        super().__init__()
        self.transcriber, self.device, self.options = transcriber, device, options
        self.journal = Journal(journal_path)
        self.lines: list[str] = []
        self.events: list[str] = []  # the order partials and finals arrived in, for the status of the app
        self.dictation: LiveDictation | None = None
        self.stopping = False
        # `d` cycles: the adapters given (--adapter), none, then each alone when there are several
        given = tuple(transcriber.adapters)
        self.adapter_sets = [given, ()] + ([(a,) for a in given] if len(given) > 1 else []) if given else []
        self.adapter_set = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            devices = list_input_devices()
            yield Select([(f"{d.index}: {d.name} ({d.default_samplerate:.0f} Hz)", d.index) for d in devices],
                         value=self.device.index, allow_blank=False, id="device")
            yield ProgressBar(total=60, show_eta=False, show_percentage=False, id="meter")
            yield Label("silence", id="speech")
        yield Static("", id="partial")
        yield RichLog(id="finals", wrap=True, markup=False)
        yield Label(self.transcriber.describe_devices(), id="status")
        yield Footer()

    def on_mount(self) -> None:
        # SIGTERM (a logout, `kill`) quits like `q`: the open utterance is committed first
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: self.run_worker(self.action_quit()))
        self.start_engine(self.device)

    @property
    def engine(self):
        return self.dictation.engine if self.dictation is not None else None

    # -- engine ---------------------------------------------------------------------------------
    def start_engine(self, device: InputDevice) -> None:
        self.stop_engine()
        self.device = device
        dictation = LiveDictation(self.transcriber, device, self.journal, lambda e: self.post_message(EngineEvent(e)),
                                  self.options)
        try:
            self.dictation = dictation.start()
        except Exception as exc:
            self.set_status(f"cannot open {device.name}: {exc}")
            return
        self.set_status(f"listening on {device.name} ({dictation.microphone.rate} Hz) - "
                        f"{self.transcriber.describe_devices()}")

    def stop_engine(self) -> None:
        if self.dictation is not None:
            self.dictation.stop()
            self.dictation = None

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if isinstance(event, Level):
            self.query_one("#meter", ProgressBar).update(progress=max(0.0, 60 + event.dbfs))
            self.query_one("#speech", Label).update("SPEECH" if event.speaking else "silence")
        elif isinstance(event, Partial):
            self.events.append("partial")
            self.query_one("#partial", Static).update(event.text)
        elif isinstance(event, Final):
            self.events.append("final")
            self.query_one("#partial", Static).update("")
            if event.text:
                self.lines.append(event.text)
                self.query_one("#finals", RichLog).write(f"{event.text}   ({event.latency_ms:.0f} ms)")
        elif isinstance(event, Failed):
            self.set_status(f"stopped: {event.message}")
        elif isinstance(event, AdaptersChanged):
            names = ", ".join(event.names) or "none"
            self.set_status(f"adapters: {names} (switched in {event.switch_ms:.0f} ms)")

    def set_status(self, text: str) -> None:
        self.query_one("#status", Label).update(text)

    # -- actions --------------------------------------------------------------------------------
    @on(Select.Changed, "#device")
    def device_changed(self, event: Select.Changed) -> None:
        if self.engine is not None and event.value != self.device.index:
            chosen = next(d for d in list_input_devices() if d.index == event.value)
            self.start_engine(chosen)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.engine is not None:
            (self.engine.paused.set if self.paused else self.engine.paused.clear)()
        self.set_status("paused" if self.paused else f"listening on {self.device.name}")

    def action_copy_last(self) -> None:
        if self.lines:
            self.copy_to_clipboard(self.lines[-1])
            self.notify("last line copied")

    def action_copy_all(self) -> None:
        self.copy_to_clipboard("\n".join(self.lines))
        self.notify(f"{len(self.lines)} lines copied")

    def action_save(self) -> None:
        path = Path(f"dictation-{len(self.lines)}-lines.txt")
        path.write_text("\n".join(self.lines) + "\n")
        self.notify(f"saved to {path}")

    def action_next_adapters(self) -> None:
        if not self.adapter_sets:
            self.notify("no domain adapters: start with --adapter NAME (see `voxprompt adapters`)")
            return
        self.adapter_set = (self.adapter_set + 1) % len(self.adapter_sets)
        chosen = self.adapter_sets[self.adapter_set]
        if self.engine is not None:
            self.engine.switch_adapters(chosen)
        self.set_status(f"switching to adapters: {', '.join(a.name for a in chosen) or 'none'}...")

    def action_clear(self) -> None:
        self.lines.clear()
        self.query_one("#finals", RichLog).clear()

    async def action_quit(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.set_status("committing what was said...")
        await asyncio.to_thread(self.stop_engine)  # the UI keeps drawing the last final meanwhile
        self.journal.close()
        self.exit()
