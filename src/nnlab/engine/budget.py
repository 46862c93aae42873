"""A time budget: the run that gives the best accuracy in this much time on *this* machine.

``nnlab run NAME --time-budget 10m`` asks the experiment's :class:`Budget` for its sizes
(:class:`Size`: the flags that make it, and the held-out accuracy measured after each number
of epochs tried), measures what one epoch of each costs here with a probe of a few steps
(:class:`Cost`), and :func:`choose` picks the size and number of epochs with the best
accuracy whose predicted whole-process time fits. The plan is printed before the run starts
and recorded in its ``config.json``; the run gets a deadline, and the epoch driver stops
early (keeping what it has) if the machine turns out slower than the probe said.

Accuracy between two measured numbers of epochs is interpolated linearly in log(epochs);
below the fewest measured the size is not planned (nothing says what it reaches), above the
most it is taken as the most's (more epochs of a schedule planned for its length are not
worse, so the prediction stays a floor), and no size runs more than three times its most
measured epochs (past that nothing measured says the time is well spent: a budget that large
on a fast machine leaves time unused rather than guess).

This module imports no torch: the CLI parses ``--time-budget`` before any is loaded.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnlab.errors import ConfigError

MARGIN = 0.03  # the plan aims this fraction under the budget: the probe's noise
EXTRAPOLATE = 3  # a size runs at most this many times its most measured epochs
_UNITS = {"s": 1, "m": 60, "h": 3600}
_started_here = time.time()  # the fallback for process_age_s where /proc is not


def parse_budget(text: str | float | int) -> float:
    """Seconds from ``'90s'``, ``'10m'``, ``'1h'``, ``'1h30m'``, ``'2.5m'`` or a bare number of
    seconds; ConfigError on anything else or on a budget that is not positive."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower()
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smh]?)", s)
        if not s or re.sub(r"(\d+(?:\.\d+)?)\s*([smh]?)", "", s).strip() or not parts or \
                (len(parts) > 1 and any(unit == "" for _, unit in parts)):
            raise ConfigError(f"--time-budget {text!r}: give a duration such as 90s, 10m, 1h "
                              "or 1h30m")
        seconds = sum(float(n) * _UNITS[unit or "s"] for n, unit in parts)
    if not seconds > 0 or not math.isfinite(seconds):
        raise ConfigError(f"--time-budget {text!r}: must be more than 0 seconds")
    return seconds


def process_age_s() -> float:
    """Seconds since this process started (interpreter start-up and imports included), read
    from /proc on Linux; elsewhere since nnlab's engine was first imported."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22: starttime
        import os

        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time() - _started_here


@dataclass(frozen=True)
class Size:
    """One size of an experiment a budget may choose.

    name: a short name ('cpu', 'full'); fields: the Config fields that make it (``widths``,
    ``batch_size``...); accuracy: held-out accuracy measured after a run of E epochs, as
    {E: accuracy} (from run folders: ``source`` says which)."""

    name: str
    fields: Mapping[str, Any]
    accuracy: Mapping[int, float]
    source: str = ""

    def predicted(self, epochs: int) -> float | None:
        """The accuracy a run of ``epochs`` is expected to reach (see the module docstring);
        None below the fewest epochs measured."""
        points = sorted(self.accuracy.items())
        if not points or epochs < points[0][0]:
            return None
        if epochs >= points[-1][0]:
            return points[-1][1]
        for (e0, a0), (e1, a1) in zip(points, points[1:], strict=False):
            if e0 <= epochs <= e1:
                w = (math.log(epochs) - math.log(e0)) / (math.log(e1) - math.log(e0))
                return a0 + w * (a1 - a0)
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class Cost:
    """What a size costs on this machine, in seconds: ``epoch_s`` per epoch (training and the
    per-epoch evaluation), ``fixed_s`` once (set-up, the final evaluation, saving, figures).
    ``probe_s``: what measuring it took."""

    epoch_s: float
    fixed_s: float
    probe_s: float = 0.0


@dataclass(frozen=True)
class Budget:
    """What an experiment gives ``--time-budget`` (the ``budget`` part of its record).

    sizes: ``config -> [Size]``, the sizes it may run at (the ones matching flags the user
    gave are kept by the engine). probe: ``(config, size) -> Cost`` on this machine, in a few
    seconds. Epochs are set through the Config field ``epochs_field``. caveat: ``config ->
    line or None``, what the plan must add about its prediction (the accuracy was measured
    on other data than the config's, say)."""

    sizes: Callable[[Any], Sequence[Size]]
    probe: Callable[[Any, Size], Cost]
    epochs_field: str = "epochs"
    caveat: Callable[[Any], str | None] | None = None


@dataclass
class Plan:
    """The chosen run: ``size`` for ``epochs``, expected to take ``predicted_s`` seconds of
    the whole process and reach ``predicted_acc``; ``cost``: the chosen size's, as probed
    (its deadline follows from it); ``considered``: every size's best fit."""

    budget_s: float
    size: Size
    epochs: int
    predicted_s: float
    predicted_acc: float | None  # None: fewer epochs than its size was measured at
    spent_s: float  # before the run started: start-up, imports and the probe
    probe_s: float
    cost: Cost  # the chosen size's, as the probe measured it
    considered: list[dict] = field(default_factory=list)
    epochs_field: str = "epochs"
    caveat: str | None = None  # printed under the plan, kept with it

    @property
    def fields(self) -> dict[str, Any]:
        """The Config fields the plan sets."""
        return {**self.size.fields, self.epochs_field: self.epochs}

    @property
    def deadline_s(self) -> float:
        """Process age by which training must stop so that the rest fits in the budget."""
        return self.budget_s - self.cost.fixed_s

    def lines(self) -> list[str]:
        """What ``nnlab run`` prints before it starts."""
        shown = ", ".join(f"--{k.replace('_', '-')} {_shown(v)}" for k, v in self.fields.items())
        expected = (f"expected {self.predicted_acc:.1%} held-out accuracy"
                    if self.predicted_acc is not None else
                    f"fewer epochs than {self.size.name} was ever measured at "
                    f"({min(self.size.accuracy)}), so no accuracy is predicted")
        out = [f"time budget {_duration(self.budget_s)}: probed this machine in "
               f"{self.probe_s:.1f} s; {_duration(self.spent_s)} spent before training",
               f"plan: {self.size.name} ({shown}): about {_duration(self.predicted_s)} in all, "
               f"{expected}"]
        for c in self.considered:
            if c["size"] != self.size.name:
                what = (f"{c['epochs']} epochs, {_duration(c['predicted_s'])}, expected "
                        f"{c['predicted_acc']:.1%}" if c["epochs"] else c["why"])
                out.append(f"  not {c['size']}: {what}")
        if self.caveat:
            out.append(f"note: {self.caveat}")
        return out

    def record(self) -> dict[str, Any]:
        """What config.json keeps of the plan."""
        return {"budget_s": self.budget_s, "size": self.size.name, "epochs": self.epochs,
                "predicted_s": round(self.predicted_s, 1),
                "predicted_acc": (round(self.predicted_acc, 4)
                                  if self.predicted_acc is not None else None),
                "spent_before_s": round(self.spent_s, 1), "probe_s": round(self.probe_s, 2),
                "considered": self.considered,
                **({"caveat": self.caveat} if self.caveat else {})}


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def choose(budget_s: float, spent_s: float, sizes: Sequence[Size], costs: Mapping[str, Cost],
           margin: float = MARGIN) -> tuple[Size, int, float, float, list[dict]]:
    """The (size, epochs, predicted seconds, predicted accuracy, considered) with the best
    predicted accuracy whose whole-process time, ``spent_s`` + fixed + epochs x epoch,
    fits in ``budget_s`` less ``margin``; each size runs as many epochs as fit (at most
    EXTRAPOLATE x its most measured). Ties go to the faster plan. ``considered``: each size's
    best fit (or why none), with the costs it was planned from. When no size fits its fewest
    measured epochs (a busy or slow machine), the size nearest its measured range runs the
    epochs that fit, with no accuracy predicted (None), rather than nothing; ConfigError,
    saying what the smallest plan needs, only when not one epoch of any size fits."""
    usable = budget_s * (1 - margin) - spent_s
    considered, best = [], None
    for size in sizes:
        cost = costs[size.name]
        measured = {"epoch_s": round(cost.epoch_s, 2), "fixed_s": round(cost.fixed_s, 2)}
        epochs = max(0, min(math.floor((usable - cost.fixed_s) / cost.epoch_s),
                            EXTRAPOLATE * max(size.accuracy)))
        acc = size.predicted(epochs)
        if acc is None:
            fewest = min(size.accuracy)
            need = (spent_s + cost.fixed_s + fewest * cost.epoch_s) / (1 - margin)
            considered.append({"size": size.name, "epochs": 0, "needs_s": round(need, 1),
                               "why": f"{fewest} epochs (the fewest measured) need about "
                                      f"{_duration(need)}", **measured})
            continue
        seconds = spent_s + cost.fixed_s + epochs * cost.epoch_s
        considered.append({"size": size.name, "epochs": epochs, "predicted_s": round(seconds, 1),
                           "predicted_acc": round(acc, 4), **measured})
        if best is None or (acc, -seconds) > (best[3], -best[2]):
            best = (size, epochs, seconds, acc)
    if best is None:  # fewer epochs than any size was measured at: the nearest fit
        fits = [(math.floor((usable - costs[s.name].fixed_s) / costs[s.name].epoch_s), s)
                for s in sizes]
        fits = [(e, s) for e, s in fits if e >= 1]
        if not fits:
            least = min(spent_s + costs[s.name].fixed_s + costs[s.name].epoch_s
                        for s in sizes) / (1 - margin)
            raise ConfigError(f"--time-budget {_duration(budget_s)} is too short on this "
                              f"machine: one epoch of the smallest size needs about "
                              f"{_duration(least)}")
        epochs, size = max(fits, key=lambda f: (f[0] / min(f[1].accuracy),
                                                -costs[f[1].name].epoch_s))
        seconds = spent_s + costs[size.name].fixed_s + epochs * costs[size.name].epoch_s
        entry = next(c for c in considered if c["size"] == size.name)
        entry.update(epochs=epochs, predicted_s=round(seconds, 1), predicted_acc=None)
        best = (size, epochs, seconds, None)
    return (*best, considered)


def plan(budget: Budget, config: Any, budget_s: float, given: Mapping[str, Any],
         say: Callable[[str], None] = print) -> Plan:
    """Probe every size of ``budget`` that agrees with the flags ``given`` and choose (see
    :func:`choose`). ConfigError when the flags leave no size, or when the budget fits none."""
    if budget.epochs_field in given:
        raise ConfigError(f"--time-budget chooses --{budget.epochs_field.replace('_', '-')}; "
                          "give one or the other")
    sizes = [s for s in budget.sizes(config)  # the config holds the given values, parsed
             if all(_same(getattr(config, k), v) for k, v in s.fields.items() if k in given)]
    if not sizes:
        fixed = ", ".join(f"--{k.replace('_', '-')}" for k in given
                          if any(k in s.fields for s in budget.sizes(config)))
        raise ConfigError(f"--time-budget: no measured size has the {fixed} given; drop it "
                          "and the budget chooses")
    if (busy := busy_cores(0.3)) is not None and busy >= 0.5:
        free = free_threads(busy)
        say(f"note: other processes keep about {busy:.1f} cores busy: the run trains on "
            f"{free} thread{'s' if free != 1 else ''} (one sharing a core with a busy process "
            "slows every step), the plan is smaller, and the learning-rate schedule is keyed "
            "to the time left, ending at the deadline whatever the machine does")
    t = time.perf_counter()
    costs = {}
    for size in sizes:
        costs[size.name] = budget.probe(config, size)
    probe_s = time.perf_counter() - t
    spent = process_age_s()
    size, epochs, seconds, acc, considered = choose(budget_s, spent, sizes, costs)
    chosen = Plan(budget_s, size, epochs, seconds, acc, spent, probe_s, costs[size.name],
                  considered, budget.epochs_field,
                  budget.caveat(config) if budget.caveat is not None else None)
    for line in chosen.lines():
        say(line)
    return chosen


def busy_cores(sample_s: float = 0.3) -> float | None:
    """How many cores other processes keep busy (:func:`nnlab.device.busy_cores`)."""
    from nnlab.device import busy_cores as sample

    return sample(sample_s)


def free_threads(busy: float) -> int:
    """Run on the cores other processes leave free: torch's threads cut to their number (an
    OpenMP step waits for its slowest thread, and one sharing a core with a busy process is
    slow). Returns the threads the run now uses."""
    import os

    import torch

    free = max(1, round((os.cpu_count() or 1) - busy))
    if free < torch.get_num_threads():
        torch.set_num_threads(free)
    return torch.get_num_threads()


def _same(a: Any, b: Any) -> bool:
    """Equal as flag values (a list equals the tuple a flag makes)."""
    return (tuple(a) if isinstance(a, list) else a) == (tuple(b) if isinstance(b, list) else b)


def outcome(metrics: dict) -> str | None:
    """The line ``nnlab run`` prints after a budgeted run: the whole process against the
    budget and the plan; None for a run without a budget."""
    done = metrics.get("time_budget")
    if not isinstance(done, dict):
        return None
    late = "; training stopped early, at the deadline" if done.get("stopped_early") else ""
    return (f"time budget {_duration(done['budget_s'])}: the whole process took "
            f"{_duration(done['process_s'])} ({done['process_s'] / done['budget_s']:.0%} of "
            f"it; planned {_duration(done['predicted_s'])}){late}")


def timed(fn: Callable[[], Any], repeats: int = 2, warmup: int = 1) -> float:
    """The mean time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, in
    seconds."""
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats
