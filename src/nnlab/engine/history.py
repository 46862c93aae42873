"""Per-epoch (or per-step) records of a run, saved to and read back from CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path


class History:
    """An ordered list of flat records, one per epoch (or evaluation step).

    Records may carry tags (say ``impl='numpy'``) so several runs share one file; plots select
    them with :meth:`column`'s ``where``.
    """

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows: list[dict] = list(rows or [])

    def log(self, **row: float | int | str) -> None:
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    def extend(self, other: History) -> None:
        self.rows.extend(other.rows)

    @property
    def last(self) -> dict:
        return self.rows[-1]

    def column(self, key: str, **where: object) -> list:
        """Values of ``key`` over the rows whose fields equal ``where`` (e.g. impl='torch')."""
        return [
            r[key] for r in self.rows if key in r and all(r.get(k) == v for k, v in where.items())
        ]

    def best(self, key: str, lowest: bool = False) -> tuple[int, float]:
        """(1-based row number, value) of the first row with the highest ``key`` (or lowest:
        a loss); with one row per epoch the row number is the epoch."""
        values = self.column(key)
        pick = min if lowest else max
        i = pick(range(len(values)), key=values.__getitem__)
        return i + 1, values[i]

    def to_csv(self, path: str | Path) -> None:
        """Every row, every column any row has, written atomically (a reader or a kill
        never sees half a file; a full disk is WriteFailed, naming the file)."""
        from nnlab.engine.files import write_atomic

        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(path, text.getvalue().encode(), durable=False)  # checkpoints: durable

    @classmethod
    def load_csv(cls, path: str | Path) -> History:
        """Read a history back; numbers come back as int or float, empty cells are dropped.
        A file that is not such a table (damaged, not text) is one NnlabError naming it."""
        from nnlab.errors import NnlabError

        try:
            with open(path, newline="") as f:
                rows = [{k: _parse(v) for k, v in row.items()
                         if isinstance(k, str) and isinstance(v, str) and v != ""}
                        for row in csv.DictReader(f)]
        except (csv.Error, UnicodeDecodeError, ValueError):
            raise NnlabError(f"{path}: not a history nnlab wrote (damaged)") from None
        return cls(rows)


def _parse(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def flatten(metrics: dict, prefix: str = "", keep_none: bool = False
            ) -> dict[str, float | None]:
    """{'numpy': {'test_acc': 0.9}} -> {'numpy.test_acc': 0.9}; other non-numbers are dropped,
    and None (a milestone not reached) too unless ``keep_none``."""
    flat: dict[str, float | None] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}.", keep_none))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
        elif value is None and keep_none:
            flat[name] = None
    return flat
