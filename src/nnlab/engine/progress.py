"""Progress a person can follow anywhere: a tqdm bar on a terminal, lines in a log file.

On a terminal the bar stays on screen when it ends. When stderr is a file or a pipe
(``nnlab run ... > log 2>&1``, nohup, CI) a bar would be one endless line, so each epoch (or
evaluation) prints one plain line instead: where it is, its losses and accuracies, the
learning rate, images/s, the training time so far (across resumes) and an estimate of the
time left. Lines come at most
every ``LINE_EVERY_S`` seconds (the first and the last always), so a toy run of 1,000 tiny
epochs does not flood the log.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

from tqdm.auto import tqdm

LINE_EVERY_S = 2.0


def format_seconds(s: float) -> str:
    """3725 -> '1h02m', 125 -> '2m05s', 7.3 -> '7s'."""
    s = max(0, int(round(s)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _value(key: str, v: object) -> str:
    if isinstance(v, float):
        if key == "lr":
            return f"{v:.3g}"
        if key.endswith("per_s"):
            return f"{v:.0f}"
        return f"{v:.4f}"
    return str(v)


SHOWN = ("loss", "acc", "lr", "images_per_s", "T")


class Progress:
    """``update(done, row)`` after each epoch or evaluation; ``close()`` at the end.

    ``total`` counts epochs or steps, ``initial`` how many were done before a resume.
    ``enabled=None`` shows a bar on a terminal and lines elsewhere; False shows nothing.
    """

    def __init__(self, total: int, desc: str, unit: str = "epoch", initial: int = 0,
                 enabled: bool | None = None) -> None:
        self.total, self.desc, self.unit, self.initial = total, desc, unit, initial
        self.enabled = enabled is not False
        self.tty = self.enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.last_line = -float("inf")
        self.bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=True,
                         dynamic_ncols=True) if self.tty else None)

    def update(self, done: int, row: Mapping[str, object]) -> None:
        shown = {k: v for k, v in row.items() if k.endswith(SHOWN) and k not in ("epoch", "step")}
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix({k: _value(k, v) for k, v in shown.items()}, refresh=True)
            return
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last_line < LINE_EVERY_S and done not in (self.initial + 1, self.total):
            return
        self.last_line = now
        # The row's wall_s counts training across resumes: a resumed run's first epoch may
        # have been mostly done before, so the time since this process started misleads.
        elapsed = float(row.get("wall_s", now - self.t0))
        rate = elapsed / max(1, done)
        fields = "  ".join(f"{k} {_value(k, v)}" for k, v in shown.items())
        print(f"{self.desc}  {self.unit} {done}/{self.total}  {fields}  elapsed "
              f"{format_seconds(elapsed)}  left {format_seconds(rate * (self.total - done))}",
              file=sys.stderr, flush=True)

    def write(self, message: str) -> None:
        """A line that does not break the bar."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        elif self.enabled:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
