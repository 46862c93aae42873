"""A trained model for others: nnlab export writes safetensors, ONNX and TorchScript files that
give the run's own logits (onnxruntime, torch.jit.load, a rebuild from model.json), with the
input preparation inside; nnlab predict classifies image files, one line each."""

import json

import numpy as np
import pytest
import torch

from nnlab import experiments
from nnlab.cli import main
from nnlab.export import Classifier, load_classifier


@pytest.fixture(scope="module")
def runs(learnable_cifar, tmp_path_factory):
    """A quick speedrun and a quick whitened MLP (its ZCA must travel with it)."""
    import os

    root = tmp_path_factory.mktemp("export")
    os.environ.setdefault("NNLAB_CACHE", str(root / "cache"))
    for name, extra in [("cifar-speedrun", []), ("cifar-mlp", ["--zca-eps", "0.1"])]:
        assert main(["run", name, "--quick", *extra, "--data", str(learnable_cifar), "--out",
                     str(root / name)]) == 0
    return root


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")  # still torch's reader
@pytest.mark.parametrize("name", ["cifar-speedrun", "cifar-mlp"])
def test_every_format_gives_the_runs_own_logits(name, runs, learnable_cifar, capsys):
    import onnxruntime
    from safetensors.torch import load_file

    from nnlab.data.cifar10 import load_cifar10

    run = runs / name
    images = load_cifar10(str(learnable_cifar)).x_train[:16].float()  # raw pixels, 0-255
    classifier, meta = load_classifier(run)
    with torch.no_grad():
        expected = classifier(images)
    for fmt in ("safetensors", "onnx", "torchscript"):
        assert main(["export", str(run), "--format", fmt]) == 0
    out = run / "export"
    written = json.loads((out / "model.json").read_text())
    assert written["classes"] == meta["classes"] and written["input"]["shape"] == ["N", 3, 32, 32]
    onnx = onnxruntime.InferenceSession(str(out / "model.onnx"))
    got = onnx.run(["logits"], {"images": images.numpy()})[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-4)
    scripted = torch.jit.load(str(out / "model.torchscript.pt"))
    torch.testing.assert_close(scripted(images), expected, atol=1e-5, rtol=1e-5)
    # safetensors holds weights only: rebuild the network that model.json names
    exp = experiments.get(written["experiment"])
    config = exp.Config(**written["config"])
    state = load_file(str(out / "model.safetensors"))
    rebuilt = Classifier(exp.build_model(config, 10), torch.zeros(3), torch.ones(3),
                         state["zca"] if state["zca"].numel() else None)
    rebuilt.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(images), expected)


@pytest.mark.slow
def test_the_exported_preparation_is_the_runs(runs, learnable_cifar):
    """From raw pixels, the exported model scores the validation images as the run did."""
    from nnlab.vision import make_splits

    run = runs / "cifar-mlp"
    metrics = json.loads((run / "metrics.json").read_text())
    splits = make_splits(str(learnable_cifar), 100, final=False)
    classifier, _ = load_classifier(run)
    with torch.no_grad():
        right = (classifier(splits.x_eval.float()).argmax(1) == splits.y_eval).sum().item()
    assert right / len(splits.y_eval) == metrics["val_acc_no_tta"]


@pytest.mark.slow
def test_predict_prints_one_line_per_image_and_refuses_what_is_not_one(runs, learnable_cifar,
                                                                      tmp_path, capsys):
    files = sorted((learnable_cifar / "train" / "cat").iterdir())[:2]
    capsys.readouterr()
    assert main(["predict", str(runs / "cifar-speedrun"), *map(str, files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(str(f))
                                   for line, f in zip(lines, files, strict=True))
    assert all(line.endswith("%)") for line in lines)
    from PIL import Image

    grey = tmp_path / "grey.png"  # another size, one channel: made RGB and 32 x 32
    Image.new("L", (64, 48), 128).save(grey)
    assert main(["predict", str(runs / "cifar-speedrun"), str(grey)]) == 0
    assert capsys.readouterr().out.startswith(f"{grey}: ")
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert main(["predict", str(runs / "cifar-speedrun"), str(text)]) == 1
    assert capsys.readouterr().err.strip() == (f"nnlab: error: {text}: not an image nnlab "
                                               "can read (PNG, JPEG, TIFF, BMP, GIF or WebP)")


def test_export_of_a_run_that_is_no_image_classifier_is_one_line(tmp_path, capsys):
    assert main(["run", "toy", "--quick", "--out", str(tmp_path / "toy")]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "toy"), "--format", "onnx"]) == 1
    assert "a toy run is not an image classifier" in capsys.readouterr().err


@pytest.mark.slow
def test_nnlab_load_predicts_files_folders_and_tensors_with_top_k(runs, learnable_cifar,
                                                                   tmp_path):
    import nnlab

    model = nnlab.load(runs / "cifar-speedrun")
    assert len(model.classes) == 10 and model.classes[3] == "cat"
    cats = learnable_cifar / "test" / "cat"
    files = sorted(cats.iterdir())[:2]
    said = model.predict([files[0], tmp_path / "missing.png", cats], top_k=3)
    assert [p.path for p in said] == [str(files[0]), str(tmp_path / "missing.png"),
                                      *map(str, sorted(cats.iterdir()))]
    good = [p for p in said if p.error is None]
    assert said[1].error.endswith("missing.png: no such file") and said[1].classes == []
    for p in good:
        assert len(p.classes) == 3 and len(set(p.classes)) == 3 and len(p.logits) == 10
        assert p.probabilities == sorted(p.probabilities, reverse=True)
        # the probabilities are the softmax of the logits, most likely first
        probs = torch.softmax(torch.tensor(p.logits), 0)
        assert p.probabilities[0] == pytest.approx(probs.max().item(), rel=1e-5)
        assert p.classes[0] == model.classes[int(probs.argmax())]
    from nnlab.export import read_images

    pixels = read_images(files)  # (2, 3, 32, 32), 0-255: the same as the files' predictions
    by_tensor = model.predict(pixels, top_k=3)
    by_path = {p.path: p.logits for p in good}
    torch.testing.assert_close(torch.tensor([p.logits for p in by_tensor]),
                               torch.tensor([by_path[str(f)] for f in files]))
    assert tuple(model(pixels).shape) == (2, 10)


@pytest.mark.slow
def test_predict_top_k_json_and_a_missing_file_among_good_ones(runs, learnable_cifar,
                                                               tmp_path, capsys):
    files = sorted((learnable_cifar / "test" / "ship").iterdir())[:2]
    missing = tmp_path / "missing.jpg"
    capsys.readouterr()
    assert main(["predict", str(runs / "cifar-speedrun"), str(files[0]), str(missing),
                 str(files[1]), "--top-k", "2", "--json"]) == 1
    out, err = capsys.readouterr()
    said = json.loads(out)
    assert [p["path"] for p in said] == [str(files[0]), str(missing), str(files[1])]
    assert said[1] == {"path": str(missing), "classes": [], "probabilities": [], "logits": [],
                       "error": f"{missing}: no such file"}
    assert all(len(said[i]["classes"]) == 2 and len(said[i]["logits"]) == 10 for i in (0, 2))
    assert err.strip() == f"nnlab: error: {missing}: no such file"
    capsys.readouterr()
    assert main(["predict", str(runs / "cifar-speedrun"), str(files[0].parent),
                 "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(list(files[0].parent.iterdir()))
    assert all(line.count("%)") == 3 for line in lines)


@pytest.mark.slow
def test_onnx_falls_back_to_the_legacy_exporter_in_one_line(runs, learnable_cifar, capsys,
                                                            monkeypatch, tmp_path):
    """Where torch's current exporter (torch.export, onnxscript) fails, the legacy one writes
    the file, and one line says so; the file gives the run's logits either way."""
    import onnxruntime

    from nnlab.data.cifar10 import load_cifar10

    real = torch.onnx.export

    def current_fails(*args, **kwargs):
        if kwargs.get("dynamo"):
            raise RuntimeError("unsupported operator\nmore detail")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", current_fails)
    run = runs / "cifar-speedrun"
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nnlab: the current ONNX exporter failed (RuntimeError: " \
        "unsupported operator); exported with the legacy one" in err
    images = load_cifar10(str(learnable_cifar)).x_train[:4].float()
    classifier, _ = load_classifier(run)
    with torch.no_grad():
        expected = classifier(images)
    got = onnxruntime.InferenceSession(str(tmp_path / "model.onnx")).run(
        ["logits"], {"images": images.numpy()})[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-4)


def test_eval_predict_and_export_of_one_run_agree(learnable_cifar, nnlab_cache, tmp_path,
                                                  capsys):
    """The three ways out of a run reach the same weights (all through load_trained): on the
    validation images, nnlab eval's accuracy is what nnlab.load's predict and the exported
    ONNX model give, image for image."""
    import onnxruntime

    import nnlab
    from nnlab.vision import make_splits

    run = tmp_path / "mlp"
    assert main(["run", "cifar-mlp", "--quick", "--zca-eps", "0.1", "--precision", "fp32",
                 "--data", str(learnable_cifar), "--out", str(run)]) == 0
    assert main(["eval", str(run), "--tta", "none"]) == 0
    evaluated = json.loads((run / "eval-val-none.json").read_text())["val_acc"]
    splits = make_splits(str(learnable_cifar), 100, final=False)
    images = splits.x_eval.float()  # raw pixels 0-255, as an image file holds them
    model = nnlab.load(run)
    said = [model.classes.index(p.name) for p in model.predict(images)]
    assert main(["export", str(run), "--format", "onnx"]) == 0
    onnx = onnxruntime.InferenceSession(str(run / "export" / "model.onnx"))
    exported = onnx.run(["logits"], {"images": images.numpy()})[0].argmax(1).tolist()
    assert said == exported
    assert sum(s == y for s, y in zip(said, splits.y_eval.tolist(), strict=True)) / \
        len(said) == evaluated
