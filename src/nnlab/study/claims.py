"""The study's claims, each checked against a run's data by a small function that says
whether the run agrees, with the numbers behind the verdict."""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.engine.history import History
from nnlab.study.tables import pct

VERDICTS = ("agrees", "partly agrees", "disagrees", "cannot tell")


@dataclass
class Claim:
    """One of the study's claims and what this run's data says about it."""

    text: str  # the study's words
    verdict: str  # one of VERDICTS
    evidence: str  # the numbers behind the verdict


def verdict(agrees: bool | None) -> str:
    return "cannot tell" if agrees is None else "agrees" if agrees else "disagrees"


def claim_pytorch_faster_and_stabler(toy: dict[str, dict], histories: dict[str, History]
                                     ) -> Claim:
    """The study's 2.2.3: "PyTorch outperforms NumPy in speed and stability". Speed: seconds
    of the whole fit per implementation; stability: the largest gap between the two loss
    curves from the same initial weights."""
    ratios = [m["time_ratio_numpy_over_torch"] for m in toy.values()]
    gaps = []
    for h in histories.values():
        a, b = h.column("train_loss", impl="numpy"), h.column("train_loss", impl="torch")
        gaps += [abs(x - y) for x, y in zip(a, b, strict=False)]
    faster = all(r > 1 for r in ratios)  # PyTorch faster on every dataset
    same = max(gaps) < 1e-3  # the curves coincide: neither is the more stable
    evidence = (f"NumPy takes {min(ratios):.2f}–{max(ratios):.2f}× PyTorch's time "
                f"(PyTorch {'faster' if faster else 'not faster'}); from the same weights the "
                f"two training loss curves differ by at most {max(gaps):.1e}"
                + (", so neither is the more stable" if same else ""))
    verdict = ("agrees" if faster and not same else "partly agrees" if faster or not same
               else "disagrees")
    return Claim("PyTorch outperforms NumPy in speed and stability", verdict, evidence)


def claim_mlp_overfits(history: History, split: str) -> Claim:
    """"The MLP overfits CIFAR-10": a train–held-out accuracy gap of 5 points or more at the
    end, or a held-out loss that was lowest before the last epoch."""
    last = history.last
    gap = last["train_acc"] - last[f"{split}_acc"]
    losses = history.column(f"{split}_loss")
    best, _ = history.best(f"{split}_loss", lowest=True)
    overfits = gap >= 0.05 or best < len(losses)
    return Claim("The MLP overfits CIFAR-10", verdict(overfits),
                 f"after {len(losses)} epochs train accuracy {pct(last['train_acc'])}, "
                 f"{split} {pct(last[f'{split}_acc'])} (gap {100 * gap:.1f} points); {split} "
                 f"loss lowest at epoch {best} of {len(losses)}")


def epochs_to(history: History, column: str, target: float) -> int | None:
    """The first epoch whose ``column`` reached ``target``; None if none did."""
    return next((r["epoch"] for r in history if r[column] >= target), None)


def claim_adam_faster(adam: History, sgd: History, split: str) -> Claim:
    """"Adam converges faster than SGD": epochs each needs to reach 95% of the lower of the
    two best held-out accuracies (a level both reach)."""
    col = f"{split}_acc"
    target = 0.95 * min(max(adam.column(col)), max(sgd.column(col)))
    ea, es = epochs_to(adam, col, target), epochs_to(sgd, col, target)
    agrees = None if ea is None or es is None or ea == es else ea < es  # a tie: can't tell
    return Claim("Adam converges faster than SGD", verdict(agrees),
                 f"epochs to {pct(target)} {split} accuracy: Adam {ea}, SGD {es}")


CHANCE = 0.1  # ten digits
AT_CHANCE = 2 * CHANCE  # "fails": a mean test accuracy at most twice chance


def claim_rnn_fails_beyond_10(results: dict[str, dict[int, list[float]]]) -> Claim:
    """"The tanh RNN fails beyond T ≈ 10". *Solved* at T: every seed reached 99% test
    accuracy; *fails* at T: the mean test accuracy is at most twice chance (20%; chance is
    10%). Agrees when the longest T solved is 15 or less and every longer T tried fails;
    partly agrees when accuracy falls from 99% by T = 20 but stays above twice chance at some
    longer T (it degrades rather than fails); disagrees when T = 20 or longer is solved;
    cannot tell when nothing is solved or nothing longer than the longest solved was tried."""
    text = "The tanh RNN fails beyond T ≈ 10"
    rnn = results.get("rnn", {})
    solved = [T for T, accs in sorted(rnn.items()) if min(accs) >= 0.99]
    longest = max(solved, default=None)
    beyond = {T: sum(a) / len(a) for T, a in sorted(rnn.items())
              if longest is not None and T > longest}
    if not rnn or longest is None or not beyond:
        why = ("no tanh RNN runs" if not rnn else "no length solved: too short a run to say"
               if longest is None else f"nothing longer than T = {longest} was tried")
        return Claim(text, "cannot tell", why)
    failed = [T for T, a in beyond.items() if a <= AT_CHANCE]
    if longest >= 20:
        verdict = "disagrees"
    elif len(failed) == len(beyond):
        verdict = "agrees"
    else:
        verdict = "partly agrees"
    means = ", ".join(f"{pct(a)} at T = {T}" for T, a in beyond.items())
    lstm = results.get("lstm", {})
    lstm_longest = max((T for T, a in lstm.items() if min(a) >= 0.99), default=None)
    evidence = (f"the tanh RNN solves (≥ 99% test accuracy, every seed) up to T = {longest}; "
                f"beyond it, mean test accuracy {means} (chance 10%; \"fails\" here means at "
                f"most {pct(AT_CHANCE)}"
                + (f", which {len(failed)} of these {len(beyond)} lengths meet" if failed
                   else ", which none of them meets") + ")"
                + (f"; the LSTM solves up to T = {lstm_longest}" if lstm_longest else ""))
    return Claim(text, verdict, evidence)
