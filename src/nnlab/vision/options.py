"""The flags of an image classifier: :class:`ImageOptions`, the base every image experiment's
Config subclasses (CIFAR-10 is one data source among any image folder), and
:class:`ClassifierOptions`, with the training fields of the default recipe. Imports no torch:
``nnlab run NAME --help`` reads them."""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.config import DEVICES, PRECISIONS, Options, option, resolve, validate

TTA = ("none", "flip", "flip+translate")
TTA_VIEWS = {"none": 1, "flip": 2, "flip+translate": 6}  # forward passes per image (predict)
EVAL_BATCH = 1000  # images per forward pass when evaluating (training runs and nnlab eval)
# --quick: defaults every image experiment takes first (a flag you give still wins)
QUICK = {"val_size": 100, "train_limit": 400}


@dataclass
class ImageOptions(Options):
    """The flags every image experiment's Config has (its own fields come after these).
    ``flip``, ``translate`` and ``tta`` default to None: each experiment's ``RECIPES`` say
    what runs (``--help`` prints it)."""

    data: str = option("", "your images: a folder of class folders (DIR/<class>/*.jpg), "
                           "DIR/train/<class>/* (and DIR/test/...), a .tar.gz of either, or a "
                           "torchvision CIFAR-10 root; cifar10: the official release",
                       shown="$NNLAB_DATA, else CIFAR-10 in ~/.cache/nnlab/cifar10, "
                             "downloaded there by torchvision when missing", metavar="PATH")
    val_size: int = option(0, "validation images carved from train (stratified, fixed); 0 = a "
                           "tenth of them, at most 5,000", ge=0, lt=50_000,
                           shown="0 (5,000 of CIFAR-10's 50,000)")
    final: bool = option(False, "train on all of train, evaluate on the source's test split")
    device: str = option("auto", "cuda, then mps, then cpu", choices=DEVICES)
    precision: str = option("auto", "bf16 autocast or fp32; auto = bf16 on CUDA and on CPUs "
                                    "with native bf16", choices=PRECISIONS)
    seed: int = option(0, "seeds the weights, batch order and augmentation (not the split)")
    train_limit: int = option(0, "train on a fixed class-balanced subset of this many images "
                              "(0 = all); validation unchanged. For quick pilots", ge=0)
    flip: bool | None = option(None, "random horizontal flips of the training images")
    translate: int | None = option(None, "random translation of the training images up to "
                                         "this many pixels (reflect padding)", ge=0, le=16)
    tta: str | None = option(None, "test-time augmentation of the final evaluation: none; "
                                   "flip (each image and its mirror); flip+translate (six "
                                   "views)", choices=TTA)
    image_size: int = option(32, "pixels a side every image is resized to when read (bicubic, "
                             "antialiased, as nnlab predict resizes); CIFAR-10's are 32",
                             ge=8, le=256)

    # The checks every image Config runs in __post_init__: each field's type, bounds and
    # choices. A device that is absent (--device cuda on a laptop) is refused when the run
    # starts, before any data is read.
    check_common = validate

    def resolved(self):  # noqa: ANN201 - the subclass's Config
        """A copy with every None replaced by the recipe's value (see RECIPES)."""
        return resolve(self)


@dataclass
class ClassifierOptions(ImageOptions):
    """The flags of an image classifier of your own (:func:`~nnlab.vision.image_classifier`):
    every image flag (``--data``, ``--final``, ``--train-limit``, ``--tta``...) and those of
    the default recipe (Nesterov SGD on a one-cycle schedule). Subclass it with your model's
    fields; its ``RECIPES`` give flip, translate and TTA (override them as the example
    does)."""

    epochs: int = option(10, "passes over the training split", gt=0)
    batch_size: int = option(256, "images per step", gt=0)
    lr: float = option(0.1, "peak learning rate (default optimizer: Nesterov SGD, one-cycle)",
                       gt=0, le=10)
    weight_decay: float = option(5e-4, "weight decay on weights (not biases or normalisation)",
                                 ge=0)
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy", ge=0, lt=1)
    RECIPES = {"default": {"flip": True, "translate": 2, "tta": "flip"}}

    def __post_init__(self) -> None:
        self.check_common()


def held_out(cfg: ImageOptions) -> str:
    """The split an image run reports: validation, or the source's test split with --final."""
    return "test" if cfg.final else "val"
