"""A progress bar and a clean stop for encoders that optimise (MoRIC): the first
Ctrl-C or SIGTERM asks the encoder to stop and write the best state so far; a
second one aborts without writing anything."""

from __future__ import annotations

import signal
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class OptimisationProgress:
    def __init__(self, console: Console, label: str):
        self.stop_requested = False
        self._signals: dict[int, object] = {}
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                             TextColumn("step {task.completed}/{task.total}"),
                             TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                             TextColumn("ETA"), TimeRemainingColumn(), console=console,
                             transient=True)
        self._task = self._bar.add_task(label, total=None, status="")

    def update(self, state: dict) -> None:
        """The encoder's progress callback: step, total, bpp, psnr, a phase
        before the steps (`phase`: the coarse start), and with a target, where the
        encode is heading (`target`; any may be missing)."""
        parts = [state["phase"]] if state.get("phase") else []
        if state.get("bpp") is not None:
            parts.append(f"{state['bpp']:.3f} bpp")
        if state.get("psnr") is not None:
            parts.append(f"{state['psnr']:.2f} dB")
        if state.get("target"):
            parts.append(state["target"])
        if self.stop_requested:
            parts.append("stopping…")
        self._bar.update(self._task, completed=state.get("step", 0), total=state.get("total"),
                         status=", ".join(parts))

    def should_stop(self) -> bool:
        return self.stop_requested

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stop_requested:  # the second signal: give up, write nothing
            raise KeyboardInterrupt
        self.stop_requested = True

    def __enter__(self) -> OptimisationProgress:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._signals[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (embedded use): keep the default
                pass
        self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.stop()
        for sig, previous in self._signals.items():
            signal.signal(sig, previous)
