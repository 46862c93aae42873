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
