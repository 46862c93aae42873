"""A user's own images, not CIFAR-10: any number of classes (from the folder names), any size
and mode (resized when read), trained in seconds, then predicted and exported with the
user's own class names."""

import json

import numpy as np
import pytest
from PIL import Image

import nnlab
from nnlab.cli import main


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Three classes of 64 x 48 RGB photos-to-be: a red, a green and a blue blob on noise."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    colours = {"apple": (220, 30, 30), "leaf": (30, 200, 40), "sky": (40, 60, 230)}
    for split, n in (("train", 30), ("test", 8)):
        for name, colour in colours.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 90, (48, 64, 3))
                y, x = rng.integers(8, 30), rng.integers(8, 40)
                pixels[y:y + 14, x:x + 18] = colour
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """scikit-learn's digits as 8 x 8 grey PNGs in ten class folders."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    data = load_digits()
    for i, (image, label) in enumerate(zip(data.images[:600], data.target[:600], strict=True)):
        split = "test" if i % 5 == 0 else "train"
        (root / split / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image / 16 * 255).astype(np.uint8)).save(
            root / split / str(label) / f"{i:04d}.png")
    return root


def test_three_classes_of_larger_photos_train_predict_and_export(shapes, nnlab_cache, tmp_path,
                                                                  capsys):
    run = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(shapes), "--final",
                 "--epochs", "6", "--batch-size", "30", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_acc"] >= 0.9  # chance is 1/3
    model = nnlab.load(run)
    assert model.classes == ["apple", "leaf", "sky"]
    assert json.loads((run / "config.json").read_text())["classes"] == model.classes
    said = model.predict(shapes / "test" / "leaf", top_k=3)
    assert len(said) == 8 and sum(p.name == "leaf" for p in said) >= 7
    assert all(sorted(p.classes) == ["apple", "leaf", "sky"] for p in said)
    capsys.readouterr()
    assert main(["export", str(run), "--format", "onnx"]) == 0
    meta = json.loads((run / "export" / "model.json").read_text())
    assert meta["classes"] == ["apple", "leaf", "sky"] and meta["output"]["shape"] == ["N", 3]


def test_digits_as_8_by_8_grey_pngs_train_and_predict_their_own_names(digits, nnlab_cache,
                                                                      tmp_path):
    run = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(digits), "--final",
                 "--epochs", "8", "--batch-size", "64", "--out", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["test_acc"] >= 0.8  # chance 0.1
    said = nnlab.load(run).predict(sorted((digits / "test" / "7").iterdir()))
    assert sum(p.name == "7" for p in said) >= 0.8 * len(said)


def test_image_size_trains_predicts_and_exports_at_that_size(shapes, nnlab_cache, tmp_path,
                                                             capsys):
    """--image-size 48: the photos are read at 48 x 48 (a cache of their own), the model
    takes that size, predict resizes new images to it, and model.json says so."""
    run = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(shapes), "--final",
                 "--epochs", "6", "--batch-size", "30", "--image-size", "48",
                 "--out", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["test_acc"] >= 0.9
    assert {p.name.endswith("-48px.pt") for p in nnlab_cache.glob("cifar10-*.pt")} == {True}
    model = nnlab.load(run)
    assert model.image_size == 48
    said = model.predict(shapes / "test" / "sky")
    assert sum(p.name == "sky" for p in said) >= 7
    capsys.readouterr()
    assert main(["export", str(run), "--format", "onnx"]) == 0
    meta = json.loads((run / "export" / "model.json").read_text())
    assert meta["input"]["shape"] == ["N", 3, 48, 48] and "48 x 48" in meta["input"]["resize"]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(run / "export" / "model.onnx"))
    logits = session.run(None, {"images": np.zeros((2, 3, 48, 48), np.float32)})[0]
    assert logits.shape == (2, 3)


@pytest.mark.parametrize("name, said", [("cifar-cnn", "the study's VGG takes 32 x 32"),
                                        ("cifar-mlp", "32 at most")])
def test_networks_built_for_32_pixels_refuse_other_sizes_in_one_line(name, said, capsys):
    assert main(["run", name, "--image-size", "64"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err


def test_a_subclass_of_the_public_recipe_trains_its_phases_in_the_loop(digits, nnlab_cache,
                                                                      tmp_path):
    """ImageRecipe's hooks, as nnlab's VGG uses them: two phases from the same initial
    weights, each with its own model and history, and metrics added at the end."""
    from dataclasses import replace

    from torch import nn

    class Linear(nnlab.ImageRecipe):
        def build_model(self, cfg, n_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * cfg.image_size ** 2, n_classes))

        def phases(self, cfg):
            return {"still": replace(cfg, lr=1e-9), "moving": replace(cfg, lr=0.2)}

        def finish(self, cfg, metrics, histories):
            return {**metrics, "rows": {p: len(h) for p, h in histories.items()}}

    experiment = Linear("linear").experiment(description="a linear classifier",
                                             Config=nnlab.ClassifierOptions)
    run = tmp_path / "run"
    metrics = nnlab.run(experiment, out=run, data=str(digits), final=True, epochs=6,
                        batch_size=32, image_size=8, flip=False, translate=0,
                        progress=False)
    assert metrics["rows"] == {"still": 6, "moving": 6}
    # the same start (chance: 0.1): the phase that cannot move stays near it, the other learns
    assert metrics["still"]["test_acc"] < 0.3 and metrics["moving"]["test_acc"] > 0.6
    for phase in ("still", "moving"):
        assert (run / f"model-{phase}.pt").is_file() and (run / f"history-{phase}.csv").is_file()
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 12


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The layout every tutorial uses: photos/<class>/*.jpg, no train/ level; 3 classes of
    100 (a red, a green and a blue blob on noise)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for name, colour in {"cat": (220, 30, 30), "fern": (30, 200, 40), "sea": (40, 60, 230)}.items():
        (root / name).mkdir()
        for i in range(100):
            pixels = rng.integers(0, 90, (40, 40, 3))
            y, x = rng.integers(4, 24), rng.integers(4, 24)
            pixels[y:y + 12, x:x + 12] = colour
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.jpg")
    return root


@pytest.fixture
def no_download(monkeypatch):
    """torchvision's CIFAR-10 reader fails the test if it is ever reached."""
    import nnlab.data.cifar10 as source

    def refused(root, download):  # noqa: ANN001, ANN202
        raise AssertionError(f"torchvision was asked for CIFAR-10 at {root} "
                             f"(download={download})")

    monkeypatch.setattr(source, "_read_torchvision", refused)


def test_a_folder_of_class_folders_trains_with_default_splits_and_predicts(
        photos, nnlab_cache, no_download, tmp_path):
    """300 images in DIR/<class>/: a tenth carved as the test split, a tenth of the rest as
    validation (the default --val-size fits the data), the fast CNN trains and predicts, and
    config.json says which data it was."""
    run = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--data", str(photos), "--epochs", "6",
                 "--batch-size", "32", "--widths", "16,32,32", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_val"] == 27 and metrics["n_train"] == 243  # 300 - 30 test, then 10%
    assert metrics["val_acc"] >= 0.9  # chance is 1/3
    source = json.loads((run / "config.json").read_text())["data_source"]
    assert source["path"] == str(photos.resolve()) and source["images"] == 300
    assert source["classes"] == 3 and len(source["files"]) == 12
    said = nnlab.load(run).predict(photos / "fern")
    assert sum(p.name == "fern" for p in said) >= 90
    final = tmp_path / "final"
    assert main(["run", "cifar-speedrun", "--quick", "--final", "--data", str(photos),
                 "--batch-size", "32", "--out", str(final)]) == 0
    assert json.loads((final / "metrics.json").read_text())["n_test"] == 30


def test_nothing_is_downloaded_into_a_folder_that_is_not_a_dataset(tmp_path, nnlab_cache,
                                                                  no_download, monkeypatch,
                                                                  capsys):
    """A folder nnlab cannot read says what it found and which layouts it takes, in one line,
    and stays as it was; CIFAR-10 by name is not downloaded into a folder holding anything
    else (NNLAB_DATA pointing at one)."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "notes.txt").write_text("my notes\n")
    (mixed / "cat.jpg").write_bytes(b"not really")
    before = sorted(p.name for p in mixed.iterdir())
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(mixed),
                 "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "1 images with no class folder" in err
    assert "a folder of class folders (DIR/<class>/*.jpg)" in err
    monkeypatch.setenv("NNLAB_DATA", str(mixed))
    assert main(["run", "cifar-speedrun", "--quick", "--out", str(tmp_path / "run")]) == 1
    assert "1 other files" in capsys.readouterr().err
    assert sorted(p.name for p in mixed.iterdir()) == before  # nothing written into it
    assert not (tmp_path / "run").exists()


def test_eval_says_when_the_data_changed_since_the_run(photos, nnlab_cache, tmp_path, capsys):
    import shutil

    copy = tmp_path / "photos"
    shutil.copytree(photos, copy)
    run = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(copy), "--batch-size", "32",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert "warning" not in capsys.readouterr().err
    (copy / "cat" / "000.jpg").unlink()
    assert main(["eval", str(run)]) == 0
    assert "the data is not what this run trained on" in capsys.readouterr().err


def test_a_validation_split_that_empties_a_class_is_one_line(photos, nnlab_cache, tmp_path,
                                                            capsys):
    """270 training images, 90 a class: 269 for validation would take a whole class."""
    assert main(["run", "cifar-speedrun", "--quick", "--data", str(photos), "--val-size",
                 "269", "--out", str(tmp_path / "run")]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "decod" not in line]
    assert len(err) == 1 and "none would be left to train on" in err[0]
    assert not (tmp_path / "run").exists()
