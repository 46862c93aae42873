"""A trained image classifier for others: ``nnlab export`` and ``nnlab predict``.

An exported model takes what an image file holds and needs nothing of nnlab: its input
preparation (the run's normalisation and, for the whitened MLP, its ZCA) is inside it.

* input: ``images`` (N, 3, S, S) float32, RGB pixel values 0-255 (S: the run's
  ``--image-size``, 32 by default);
* output: ``logits`` (N, classes); ``model.json`` beside it names the classes.

Formats: ``safetensors`` (the weights, the format model hubs expect; rebuild the network with
nnlab from ``model.json``), ``onnx`` (onnxruntime and most serving stacks) and ``torchscript``
(``torch.jit.load``, no Python class needed).
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from nnlab.data.cifar10 import IMAGE_SUFFIXES
from nnlab.data.images import ImageError, read_image, resize
from nnlab.engine.files import write_atomic, write_json_atomic
from nnlab.errors import NnlabError
from nnlab.vision import load_trained

FORMATS = ("safetensors", "onnx", "torchscript")
SUFFIX = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".torchscript.pt"}


class Classifier(nn.Module):
    """A trained network with its input preparation: images (N, 3, S, S), float32 RGB pixel
    values 0-255 (S: the run's image size, 32 unless it asked for another) -> logits
    (N, classes). ``mean``/``std`` (3,) are the run's, in [0, 1] units; ``zca`` (3 S², 3 S²)
    whitens the normalised image when the run did."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 zca: torch.Tensor | None = None) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.float().view(1, 3, 1, 1) * 255)
        self.register_buffer("std", std.float().view(1, 3, 1, 1) * 255)
        self.register_buffer("zca", zca.float() if zca is not None else torch.empty(0))
        self.whitened = zca is not None  # fixed per model: it traces to a fixed graph

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std  # (N, 3, S, S)
        if self.whitened:
            x = (x.flatten(1) @ self.zca).view_as(x)
        return self.net(x)


def load_classifier(run_dir: str | Path, model: str | None = None,
                    experiment: str | Path | None = None) -> tuple[Classifier, dict[str, Any]]:
    """The trained :class:`Classifier` of a finished run (in eval mode, on the CPU) and what
    ``model.json`` says of it."""
    trained = load_trained(run_dir, model, experiment)
    data, size = trained.data, trained.image_size
    classifier = Classifier(trained.net, data["mean"], data["std"], data.get("zca")).eval()
    meta = {"experiment": trained.experiment.name, "run": str(trained.run_dir),
            "model": trained.model,
            "input": {"name": "images", "shape": ["N", 3, size, size], "dtype": "float32",
                      "values": "RGB pixel values 0-255 (the preparation is inside)",
                      "resize": f"an image of another size is resized to {size} x {size} as "
                                "training resized it: Pillow's bicubic (antialiased), the "
                                "aspect ratio not kept; 16-bit and float images scaled to "
                                "0-255, alpha composited on white, EXIF orientation applied"},
            "output": {"name": "logits", "shape": ["N", len(trained.classes)]},
            "classes": trained.classes, "config": dataclasses.asdict(trained.config)}
    return classifier, meta


def export(run_dir: str | Path, fmt: str, out: str | Path | None = None,
           model: str | None = None, experiment: str | Path | None = None) -> Path:
    """Write ``<out>/<model><suffix>`` in ``fmt`` and ``<out>/<model>.json`` (default
    ``out``: ``RUN_DIR/export``). Returns the model file's path."""
    if fmt not in FORMATS:
        raise NnlabError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    classifier, meta = load_classifier(run_dir, model, experiment)
    out = Path(out) if out is not None else Path(run_dir) / "export"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{meta['model']}{SUFFIX[fmt]}"
    example = torch.rand(2, *meta["input"]["shape"][1:]) * 255
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():  # torch.jit.trace and the legacy ONNX
        warnings.simplefilter("ignore")                # exporter warn that they are deprecated
        if fmt == "safetensors":
            state = {k: v.contiguous() for k, v in classifier.state_dict().items()}
            buffer.write(safetensors_bytes(state, metadata={"nnlab": json.dumps(meta)}))
        elif fmt == "onnx":
            _onnx(classifier, example, buffer)
        else:
            torch.jit.save(torch.jit.trace(classifier, example), buffer)
    write_atomic(path, buffer.getvalue())
    write_json_atomic(out / f"{meta['model']}.json", {**meta, "format": fmt,
                                                       "file": path.name})
    return path


def _onnx(classifier: nn.Module, example: torch.Tensor, buffer: io.BytesIO) -> None:
    """ONNX through torch's current exporter (``torch.export`` and onnxscript), the batch
    size left free; the legacy TorchScript-based exporter only where the current one fails
    (said in one line)."""
    try:
        program = torch.onnx.export(
            classifier, (example,), dynamo=True, input_names=["images"],
            output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("N")},),
            verbose=False)
        program.save(buffer)
        return
    except Exception as e:  # noqa: BLE001 - any failure of torch.export / onnxscript
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        print(f"nnlab: the current ONNX exporter failed ({type(e).__name__}: {why}); "
              "exported with the legacy one", file=sys.stderr)
        buffer.seek(0)
        buffer.truncate()
    torch.onnx.export(classifier, (example,), buffer, dynamo=False,
                      input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "N"}, "logits": {0: "N"}})


def read_images(paths: list[str | Path], size: int = 32) -> torch.Tensor:
    """Image files (PNG, JPEG, TIFF, ...) as (N, 3, size, size) float32 pixel values 0-255,
    read as :mod:`nnlab.data.images` says (16-bit and float scaled, alpha on white, EXIF
    turned upright) and resized as training resized them (bicubic, antialiased). ImageError
    for the first file that cannot be read."""
    images = [torch.from_numpy(resize(read_image(path), size).astype(np.float32))
              for path in paths]  # each (size, size, 3)
    return torch.stack(images).permute(0, 3, 1, 2).contiguous()


@dataclasses.dataclass
class Prediction:
    """What a model says of one image: its ``top_k`` classes, most likely first, with their
    probabilities, and every class's logit; or, for a file that could not be read, why
    (``error``, and nothing else)."""

    path: str
    classes: list[str] = dataclasses.field(default_factory=list)
    probabilities: list[float] = dataclasses.field(default_factory=list)
    logits: list[float] = dataclasses.field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str | None:
        """The most likely class (None for a file that could not be read)."""
        return self.classes[0] if self.classes else None

    @property
    def probability(self) -> float | None:
        return self.probabilities[0] if self.probabilities else None


def image_files(paths: list[str | Path]) -> list[Path]:
    """``paths`` with every folder replaced by the image files in it (sorted, not recursive);
    a file is kept whatever its name, so that one that is not an image is reported."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    return files


class TrainedModel:
    """A finished run's trained image classifier, ready to use: ``nnlab.load(RUN_DIR)``.

    ``model.classes`` names its outputs; ``model.predict(images, top_k=3)`` takes image files
    or folders of them (each read and resized as training's images were, see
    :mod:`nnlab.data.images`), or a tensor (N, 3, S, S) of RGB pixel values 0-255 (S:
    ``model.image_size``), and gives one :class:`Prediction` each; ``model(images)`` gives
    the logits (N, classes) of such a tensor. Loading is as safe as ``nnlab eval``'s:
    nothing in the folder runs."""

    def __init__(self, classifier: Classifier, meta: dict[str, Any]) -> None:
        self.classifier, self.meta = classifier, meta
        self.classes: list[str] = list(meta["classes"])
        self.image_size: int = meta["input"]["shape"][-1]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.classifier(images.float())

    def predict(self, images: list[str | Path] | str | Path | torch.Tensor, top_k: int = 1
                ) -> list[Prediction]:
        """One :class:`Prediction` per image, in order; a file that cannot be read (missing,
        not an image) gets its error and does not stop the others."""
        if not 1 <= top_k:
            raise NnlabError(f"top_k must be at least 1, got {top_k}")
        if isinstance(images, torch.Tensor):
            return self._predict([f"images[{i}]" for i in range(len(images))], images, top_k)
        results, readable = [], []
        for path in image_files([images] if isinstance(images, str | Path) else images):
            try:
                readable.append((len(results), read_images([path], self.image_size)))
                results.append(Prediction(str(path)))
            except ImageError as e:
                results.append(Prediction(str(path), error=str(e)))
        if readable:
            said = self._predict([results[i].path for i, _ in readable],
                                 torch.cat([x for _, x in readable]), top_k)
            for (i, _), prediction in zip(readable, said, strict=True):
                results[i] = prediction
        return results

    def _predict(self, names: list[str], images: torch.Tensor, top_k: int) -> list[Prediction]:
        logits = self(images)
        probs = torch.softmax(logits, dim=1)
        p, k = probs.topk(min(top_k, len(self.classes)), dim=1)
        return [Prediction(name, [self.classes[int(c)] for c in ks], [float(q) for q in ps],
                           [float(v) for v in row])
                for name, ks, ps, row in zip(names, k, p, logits, strict=True)]


def load(run_dir: str | Path, model: str | None = None,
         experiment: str | Path | None = None) -> TrainedModel:
    """The :class:`TrainedModel` of a finished run (``model``: which ``model*.pt`` when it
    holds several; ``experiment``: the ``.py`` file of an experiment defined in one)."""
    return TrainedModel(*load_classifier(run_dir, model, experiment))


def predict(run_dir: str | Path, images: list[str | Path], model: str | None = None,
            experiment: str | Path | None = None, top_k: int = 1) -> list[Prediction]:
    """:meth:`TrainedModel.predict` of a finished run's model."""
    return load(run_dir, model, experiment).predict(images, top_k)
