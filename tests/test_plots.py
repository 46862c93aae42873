"""Figures: the time-to-accuracy plot labels its lines as asked, each label once."""

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402

from nnlab import plots  # noqa: E402
from nnlab.engine import History  # noqa: E402


def _history(path, accs):
    path.parent.mkdir()
    h = History()
    for i, acc in enumerate(accs):
        h.log(epoch=i + 1, wall_s=10.0 * (i + 1), val_acc=acc)
    h.to_csv(path)
    return path


def test_time_to_accuracy_shows_a_repeated_label_once(tmp_path, monkeypatch):
    paths = [_history(tmp_path / f"seed{i}" / "history.csv", [0.5 + 0.1 * i, 0.7 + 0.1 * i])
             for i in range(3)]
    legends = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: legends.append(
        [t.get_text() for t in fig.axes[0].get_legend().get_texts()]) or plt.close(fig))
    plots.plot_time_to_accuracy(paths, tmp_path / "t.png", (0.8,),
                                labels=["recipe", "recipe", "muon"], colors=[0, 0, 1])
    plots.plot_time_to_accuracy(paths, tmp_path / "u.png")
    assert legends == [["recipe", "muon"], ["seed0", "seed1", "seed2"]]  # default: folders
