"""Progress of an index build as people read it: done/total, items per second, time left.

``build_index`` reports ``(stage, done, total)``; ``ProgressMeter`` turns those calls into
a rate and an estimate of the time left for the current stage, and ``ProgressLines`` prints
them for `rag index`: one line rewritten in place on a terminal, and otherwise (a log, CI,
Docker) a new line at least every 10% of the stage or every 30 s, whichever comes first,
plus the stage's first and last.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"


class ProgressMeter:
    """Rate and time left of the current stage, from its (stage, done, total) updates."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.stage, self.done, self.total = "", 0, 0
        self._start_t = 0.0
        self._start_done = 0

    def update(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage or done < self.done:
            self._start_t, self._start_done = self._clock(), done
        self.stage, self.done, self.total = stage, done, total

    def elapsed(self) -> float:
        return self._clock() - self._start_t

    def rate(self) -> float | None:
        """Items per second since the stage started (None until one item is done)."""
        done, elapsed = self.done - self._start_done, self.elapsed()
        return done / elapsed if done > 0 and elapsed > 0 else None

    def time_left(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate and self.total else None

    def text(self, unit: str = "/s") -> str:
        """'embedding passages: 120/1,500 (8%), 25.3/s, about 55 s left' (as much as is known)."""
        if not self.total:
            return self.stage
        parts = [f"{self.stage}: {self.done:,}/{self.total:,} ({100 * self.done // self.total}%)"]
        rate = self.rate()
        if rate is not None and self.done < self.total:
            parts.append(f"{rate:.1f}{unit}")
            parts.append(f"about {_duration(self.time_left() or 0)} left")
        elif rate is not None:
            parts.append(f"{rate:.1f}{unit}, {_duration(self.elapsed())}")
        return ", ".join(parts)


class ProgressLines:
    """The `rag index` progress printer (a ``build_index`` progress callback)."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, every_fraction: float = 0.1,
                 every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_fraction, self.every_s = every_fraction, every_s
        self._clock = clock
        self.meter = ProgressMeter(clock)
        self._last_t = 0.0
        self._last_done = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        new_stage = stage != self.meter.stage
        self.meter.update(stage, done, total)
        unit = " passages/s" if "passage" in stage else "/s"
        if self.tty:
            end = "\n" if done >= total else ""
            print(f"\r{self.meter.text(unit)}\033[K", end=end, file=self.stream, flush=True)
            return
        now = self._clock()
        # a line each time another tenth is passed (the first call past each 10% mark)
        crossed = int(done / max(total, 1) / self.every_fraction) > int(max(self._last_done, 0) / max(total, 1)
                                                                         / self.every_fraction)
        if new_stage or done >= total or crossed or now - self._last_t >= self.every_s:
            if done == self._last_done and not new_stage:
                return
            print(self.meter.text(unit), file=self.stream, flush=True)
            self._last_t, self._last_done = now, done
