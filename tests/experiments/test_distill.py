"""cifar-mlp --teacher: soft targets from a finished run, and the checks that keep its
validation images unseen."""

import json

import pytest
import torch

from nnlab.cli import main
from nnlab.data.cifar10 import Loader


def test_the_loader_yields_each_images_own_soft_target():
    x = torch.arange(6, dtype=torch.uint8).repeat_interleave(3 * 2 * 2).view(6, 3, 2, 2)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    targets = torch.softmax(torch.randn(6, 3), dim=1)
    loader = Loader(x, y, 4, torch.zeros(3), torch.ones(3) / 255, shuffle=True, targets=targets)
    for xb, yb in loader.epoch(0):
        image = xb[:, 0, 0, 0].long()  # each image's pixels are its index
        assert yb.shape == (len(xb), 3) and torch.equal(yb, targets[image])
    with pytest.raises(ValueError, match="one row per image"):
        Loader(x, y, 4, torch.zeros(3), torch.ones(3), targets=targets[:5])


@pytest.fixture(scope="module")
def teacher(learnable_cifar, tmp_path_factory):
    """A finished small cifar-speedrun run on the learnable fake images (90% validation)."""
    root = tmp_path_factory.mktemp("teacher")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NNLAB_CACHE", str(root / "cache"))
        assert main(["run", "cifar-speedrun", "--quick", "--epochs", "8", "--batch-size",
                     "32", "--data", str(learnable_cifar), "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.mark.slow
def test_a_taught_mlp_trains_on_the_teachers_targets_and_records_them(
        teacher, learnable_cifar, nnlab_cache, tmp_path):
    out = tmp_path / "mlp"
    assert main(["run", "cifar-mlp", "--quick", "--data", str(learnable_cifar), "--zca-eps",
                 "0", "--widths", "128,128", "--epochs", "6", "--batch-size", "32",
                 "--teacher", str(teacher), "--teacher-weight", "0.8", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    recorded = json.loads((teacher / "metrics.json").read_text())
    # measured again on the student's validation images: the teacher's own held-out ones
    assert metrics["teacher_val_acc"] == pytest.approx(recorded["val_acc_no_tta"], abs=0.005)
    assert metrics["teacher_models"] == 1 and 0 <= metrics["teacher_train_agreement"] <= 1
    assert metrics["val_acc"] >= 0.8  # chance is 0.1
    config = json.loads((out / "config.json").read_text())
    assert config["teacher"] == str(teacher) and config["teacher_weight"] == 0.8


@pytest.mark.slow
@pytest.mark.parametrize("change, message", [
    # A teacher whose own record is far below what it scores here trained on these images
    # (its record says 5%: the check compares the two, whatever the data).
    (("metrics.json", "val_acc_no_tta", 0.05), "but 5.0% on its own: it trained on some of"),
    (("config.json", "final", True), "it trained with --final, on this run's validation"),
])
def test_a_teacher_that_saw_the_validation_images_is_refused(change, message, teacher,
                                                               learnable_cifar, nnlab_cache,
                                                               tmp_path, capsys):
    copied = tmp_path / "teacher"
    copied.mkdir()
    for f in ("config.json", "model.pt", "metrics.json"):
        (copied / f).write_bytes((teacher / f).read_bytes())
    name, key, value = change
    record = json.loads((copied / name).read_text())
    (copied / name).write_text(json.dumps({**record, key: value}))
    out = tmp_path / "mlp"
    assert main(["run", "cifar-mlp", "--quick", "--data", str(learnable_cifar), "--teacher",
                 str(copied), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("nnlab: error:")
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["--teacher-weight", "1.5"], "--teacher-weight must be <= 1"),
    (["--teacher-temperature", "0"], "--teacher-temperature must be > 0"),
])
def test_bad_teacher_settings_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "cifar-mlp", "--quick", *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and message in err
    assert not out.exists()


@pytest.mark.parametrize("teacher, message", [
    ("no/such/run", "--teacher no/such/run: no such folder"),
    (".", "--teacher .: no model.pt there or in its subfolders"),
])
def test_a_missing_teacher_is_one_line_and_leaves_no_folder(teacher, message, learnable_cifar,
                                                            nnlab_cache, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code = main(["run", "cifar-mlp", "--quick", "--data", str(learnable_cifar), "--teacher",
                 teacher, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1] == f"nnlab: error: {message}; give a finished run's folder"
    assert not out.exists()


@pytest.mark.slow
def test_a_taught_run_loads_without_its_teacher(teacher, learnable_cifar, nnlab_cache,
                                                tmp_path):
    # the student's model is its own: eval and predict must not need the teacher's folder
    import shutil

    from nnlab.export import load

    moved = tmp_path / "teacher"
    shutil.copytree(teacher, moved)
    out = tmp_path / "mlp"
    assert main(["run", "cifar-mlp", "--quick", "--data", str(learnable_cifar), "--zca-eps",
                 "0", "--teacher", str(moved), "--out", str(out)]) == 0
    shutil.rmtree(moved)
    assert main(["eval", str(out), "--data", str(learnable_cifar)]) == 0
    assert load(out).predict([next(learnable_cifar.glob("train/*/*.png"))])[0].classes


def test_a_teacher_does_not_combine_with_mixing(tmp_path, capsys):
    code = main(["run", "cifar-mlp", "--quick", "--teacher", "any", "--mixup", "0.2",
                 "--out", str(tmp_path / "run")])
    assert code == 1 and "does not combine with --mixup" in capsys.readouterr().err
