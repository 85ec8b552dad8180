"""Progress reporting shared by the terminal (tqdm) and the app (a callback into the database)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


def silent(_fraction: float, _text: str) -> None:
    return None


class Stage:
    """Maps a stage's own 0..1 progress onto its slice ``[start, end]`` of the whole job."""

    def __init__(self, progress: Progress, start: float, end: float) -> None:
        self.progress, self.start, self.end = progress, start, end

    def __call__(self, fraction: float, text: str) -> None:
        self.progress(self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0), text)


class Throttled:
    """Passes at most one update per ``interval`` seconds on (plus the final one)."""

    def __init__(self, progress: Progress, interval: float = 0.5) -> None:
        self.progress, self.interval, self._last = progress, interval, 0.0

    def __call__(self, fraction: float, text: str) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last >= self.interval:
            self._last = now
            self.progress(fraction, text)


class TerminalProgress:
    """A single tqdm bar that follows the fraction and shows the current step. The bar appears with
    the first update, so a step that turns out to have nothing to do prints nothing."""

    def __init__(self, description: str = "") -> None:
        self.description = description
        self.bar = None

    def __call__(self, fraction: float, text: str) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=1000,
                desc=self.description,
                file=sys.stderr,
                bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
            )
        target = round(min(max(fraction, 0.0), 1.0) * 1000)
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)
        self.bar.set_postfix_str(text[:80], refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


MIN_FRACTION_FOR_ETA = 0.02  # below it, the time left is a guess from too little


def time_left(elapsed_s: float, fraction: float) -> float | None:
    """Seconds left, extrapolated from the share done so far; None until there is enough of it (or when done)."""
    if not MIN_FRACTION_FOR_ETA <= fraction < 1.0:
        return None
    return elapsed_s * (1.0 - fraction) / fraction


def duration(seconds: float) -> str:
    """A span of time as people read it: ``45s``, ``3m 05s``, ``2h 10m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class Rate:
    """Counts against a total as text with the rate and the time left, timed from the first call."""

    def __init__(self, unit: str = "photos", clock: Callable[[], float] = time.monotonic) -> None:
        self.unit, self.clock = unit, clock
        self.started: float | None = None

    def text(self, done: int, total: int) -> str:
        """E.g. ``1,200/100,000 photos, 850 photos/s, about 1m 56s left`` (rate and time left once known)."""
        now = self.clock()
        if self.started is None:
            self.started = now
        line = f"{done:,}/{total:,} {self.unit}"
        elapsed = now - self.started
        if done and elapsed > 0:
            line += f", {done / elapsed:,.0f} {self.unit}/s"
        left = time_left(elapsed, done / total) if total else None
        return f"{line}, about {duration(left)} left" if left is not None else line


def fan_out(*targets: Progress) -> Progress:
    def report(fraction: float, text: str) -> None:
        for target in targets:
            target(fraction, text)

    return report
