"""A trained image classifier for others: ``nnlab export`` and ``nnlab predict``.

An exported model takes what an image file holds and needs nothing of nnlab: its input
preparation (the run's normalisation and, for the whitened MLP, its ZCA) is inside it.

* input: ``images`` (N, 3, 32, 32) float32, RGB pixel values 0-255;
* output: ``logits`` (N, classes); ``model.json`` beside it names the classes.

Formats: ``safetensors`` (the weights, the format model hubs expect; rebuild the network with
nnlab from ``model.json``), ``onnx`` (onnxruntime and most serving stacks) and ``torchscript``
(``torch.jit.load``, no Python class needed).
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nnlab.errors import NnlabError

FORMATS = ("safetensors", "onnx", "torchscript")
SUFFIX = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".torchscript.pt"}


class Classifier(nn.Module):
    """A trained network with its input preparation: images (N, 3, 32, 32), float32 RGB pixel
    values 0-255 -> logits (N, classes). ``mean``/``std`` (3,) are the run's, in [0, 1]
    units; ``zca`` (3072, 3072) whitens the normalised image when the run did."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 zca: torch.Tensor | None = None) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.float().view(1, 3, 1, 1) * 255)
        self.register_buffer("std", std.float().view(1, 3, 1, 1) * 255)
        self.register_buffer("zca", zca.float() if zca is not None else torch.empty(0))
        self.whitened = zca is not None  # fixed per model: it traces to a fixed graph

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std  # (N, 3, 32, 32)
        if self.whitened:
            x = (x.flatten(1) @ self.zca).view_as(x)
        return self.net(x)


def _model_file(run_dir: Path, model: str | None) -> str:
    names = sorted(p.stem for p in run_dir.glob("model*.pt"))
    if model is not None:
        if model not in names:
            raise NnlabError(f"{run_dir}: no {model}.pt (it holds {', '.join(names) or 'none'})")
        return model
    if not names:
        raise NnlabError(f"{run_dir}: no saved model (model*.pt): export a finished run")
    if len(names) > 1:
        raise NnlabError(f"{run_dir} holds {len(names)} models ({', '.join(names)}); pick one "
                         "with --model")
    return names[0]


def load_classifier(run_dir: str | Path, model: str | None = None,
                    experiment: str | Path | None = None) -> tuple[Classifier, dict[str, Any]]:
    """The trained :class:`Classifier` of a finished run (in eval mode, on the CPU) and what
    ``model.json`` says of it."""
    from nnlab.api import experiment_of
    from nnlab.engine import prepare
    from nnlab.engine.checkpoint import check_image_state, load_model_file, load_weights

    run_dir = Path(run_dir)
    exp, record = experiment_of(run_dir, experiment)
    if exp.build_model is None:
        raise NnlabError(f"a {exp.name} run is not an image classifier nnlab can export or "
                         "run on image files")
    name = _model_file(run_dir, model)
    saved = load_model_file(run_dir / f"{name}.pt")
    config = exp.resolve(prepare.config_from(exp, record))
    net = load_weights(lambda: exp.build_model(config), saved["model"], run_dir / f"{name}.pt")
    data = check_image_state(saved["data"], run_dir / f"{name}.pt")
    classifier = Classifier(net, data["mean"], data["std"], data.get("zca")).eval()
    meta = {"experiment": exp.name, "run": str(run_dir), "model": name,
            "input": {"name": "images", "shape": ["N", 3, 32, 32], "dtype": "float32",
                      "values": "RGB pixel values 0-255 (the preparation is inside)"},
            "output": {"name": "logits", "shape": ["N", len(data["classes"])]},
            "classes": list(data["classes"]), "config": dataclasses.asdict(config)}
    return classifier, meta


def export(run_dir: str | Path, fmt: str, out: str | Path | None = None,
           model: str | None = None, experiment: str | Path | None = None) -> Path:
    """Write ``<out>/<model><suffix>`` in ``fmt`` and ``<out>/<model>.json`` (default
    ``out``: ``RUN_DIR/export``). Returns the model file's path."""
    from nnlab.engine.checkpoint import write_atomic, write_json_atomic

    if fmt not in FORMATS:
        raise NnlabError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    classifier, meta = load_classifier(run_dir, model, experiment)
    out = Path(out) if out is not None else Path(run_dir) / "export"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{meta['model']}{SUFFIX[fmt]}"
    example = torch.rand(2, 3, 32, 32) * 255
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():  # torch deprecates both exporters below
        warnings.simplefilter("ignore")                # in favour of torch.export, which
        if fmt == "safetensors":                       # needs onnxscript for ONNX
            from safetensors.torch import save

            state = {k: v.contiguous() for k, v in classifier.state_dict().items()}
            buffer.write(save(state, metadata={"nnlab": json.dumps(meta)}))
        elif fmt == "onnx":
            torch.onnx.export(classifier, (example,), buffer, dynamo=False,
                              input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "N"}, "logits": {0: "N"}})
        else:
            torch.jit.save(torch.jit.trace(classifier, example), buffer)
    write_atomic(path, buffer.getvalue())
    write_json_atomic(out / f"{meta['model']}.json", {**meta, "format": fmt,
                                                       "file": path.name})
    return path


def read_images(paths: list[str | Path]) -> torch.Tensor:
    """Image files (PNG, JPEG, TIFF, ...) as (N, 3, 32, 32) float32 pixel values 0-255, read
    as :mod:`nnlab.data.images` says (16-bit and float scaled, alpha on white, EXIF turned
    upright) and resized to 32 x 32 (bicubic, antialiased). ImageError for the first file
    that cannot be read."""
    from nnlab.data.images import read_image, resize

    images = [torch.from_numpy(resize(read_image(path), 32).astype(np.float32))
              for path in paths]  # each (32, 32, 3)
    return torch.stack(images).permute(0, 3, 1, 2).contiguous()


@dataclasses.dataclass
class Prediction:
    """What a model says of one image file: its most likely class and that class's
    probability, or, for a file that could not be read, why (``error``)."""

    path: str
    name: str | None = None
    probability: float | None = None
    error: str | None = None


def predict(run_dir: str | Path, images: list[str | Path], model: str | None = None,
            experiment: str | Path | None = None) -> list[Prediction]:
    """One :class:`Prediction` per image file, in order, by a finished run's model; a file
    that cannot be read gets its error and does not stop the others."""
    from nnlab.data.images import ImageError

    classifier, meta = load_classifier(run_dir, model, experiment)
    results, readable = [], []
    for path in images:
        try:
            readable.append((len(results), read_images([path])))
            results.append(Prediction(str(path)))
        except ImageError as e:
            results.append(Prediction(str(path), error=str(e)))
    if readable:
        with torch.no_grad():
            probs = torch.softmax(classifier(torch.cat([x for _, x in readable])), dim=1)
        p, k = probs.max(dim=1)
        for (i, _), c, q in zip(readable, k, p, strict=True):
            results[i].name, results[i].probability = meta["classes"][int(c)], float(q)
    return results
