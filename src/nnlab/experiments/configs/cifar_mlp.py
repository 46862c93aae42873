"""The flags of ``cifar-mlp`` (Part I.3) and its recipes, torch-free: ``nnlab run cifar-mlp
--help`` reads them."""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.config import LR_MAX, option
from nnlab.errors import ConfigError
from nnlab.vision.options import QUICK as IMAGE_QUICK
from nnlab.vision.options import ImageOptions

# nnlab.models.mlp's choices (a test keeps them the same)
ACTIVATIONS, NORMS, BLOCKS = ("relu", "gelu", "silu"), ("batch", "layer", "none"), \
    ("plain", "residual", "bottleneck")

RECIPES: dict[str, dict] = {
    # The study's kind of network: a few hidden layers with dropout, Adam, no tricks.
    "study": dict(widths=(1024, 512, 256), activation="relu", norm="none", block="plain",
                  expansion=4, dropout=0.2, optimizer="adam", lr=1e-3, weight_decay=0.0,
                  schedule="constant", warmup=0.0, epochs=20, batch_size=128,
                  label_smoothing=0.0, zca_eps=0.0, flip=False, translate=0, crop=1.0, cutout=0,
                  mixup=0.0, cutmix=0.0, ema=0.0, drop_path=0.0, tta="none"),
    # Ours: see the docs (Part I.3) for how each ingredient was chosen and what it buys. Six
    # views at test time (flip+translate): +1.1 and +1.6 points over the two flip views on the
    # two sets of three trained models kept in docs/results/full-profile, for about a second.
    "best": dict(widths=(2048, 2048, 2048), activation="gelu", norm="batch", block="plain",
                 expansion=4, dropout=0.1, optimizer="adamw", lr=3e-3, weight_decay=0.05,
                 schedule="onecycle", warmup=0.25, epochs=28, batch_size=512,
                 label_smoothing=0.1, zca_eps=0.1, flip=True, translate=2, crop=1.0, cutout=0,
                 mixup=0.0, cutmix=0.0, ema=0.0, drop_path=0.0, tta="flip+translate"),
}
# The default: ``best``'s network without dropout, on whiter pixels (a ZCA floor of 0.3),
# trained 72 epochs (see the docs, Part I.3: what a longer schedule, crops and
# inverted-bottleneck blocks bought, three seeds against ``best`` at 38 epochs).
RECIPES["long"] = {**RECIPES["best"], "dropout": 0.0, "zca_eps": 0.3, "epochs": 72}


@dataclass
class Config(ImageOptions):
    """Every field left at None takes the value of ``--recipe`` (see RECIPES)."""

    recipe: str = option("long", "starting point for every flag you do not give",
                         choices=tuple(RECIPES))
    widths: tuple[int, ...] | None = option(None, "hidden widths, comma-separated")
    activation: str | None = option(None, "hidden activation", choices=ACTIVATIONS)
    norm: str | None = option(None, "normalisation after each hidden Linear", choices=NORMS)
    block: str | None = option(None, "plain layers, residual layers, or inverted-bottleneck "
                                     "blocks", choices=BLOCKS)
    expansion: int | None = option(None, "width multiplier inside a bottleneck block", gt=0)
    dropout: float | None = option(None, "dropout after each hidden activation", ge=0, lt=1)
    optimizer: str | None = option(None, "update rule", choices=("adam", "adamw", "sgd"))
    lr: float | None = option(None, "learning rate (the peak, with a schedule)", gt=0,
                              le=LR_MAX)
    weight_decay: float | None = option(None, "weight decay (decoupled for adamw)", ge=0)
    schedule: str | None = option(None, "learning-rate schedule, stepped every batch",
                                  choices=("constant", "onecycle", "cosine"))
    warmup: float | None = option(None, "fraction of training spent warming up (onecycle, "
                                        "cosine)", ge=0, lt=1)
    epochs: int | None = option(None, "passes over the training split", gt=0)
    batch_size: int | None = option(None, "images per step", gt=0)
    label_smoothing: float | None = option(None, "label smoothing of the cross-entropy",
                                           ge=0, lt=1)
    zca_eps: float | None = option(None, "ZCA whitening with this eigenvalue floor; 0 = "
                                         "per-channel normalisation only", ge=0)
    crop: float | None = option(None, "random-resized crops: each training image cropped to "
                                      "an area fraction drawn from [CROP, 1] (aspect 3:4 to "
                                      "4:3), resized back; 1 = off", gt=0, le=1)
    cutout: int | None = option(None, "cutout square side in pixels; 0 = off", ge=0, le=32)
    mixup: float | None = option(None, "mixup's alpha: blend each training image and its "
                                       "label with another's, the weight drawn from "
                                       "Beta(alpha, alpha); 0 = off", ge=0)
    cutmix: float | None = option(None, "cutmix's alpha: paste a box of another training "
                                        "image, labels weighted by its area, drawn from "
                                        "Beta(alpha, alpha); 0 = off (with --mixup: one of "
                                        "the two per batch, at random)", ge=0)
    ema: float | None = option(None, "decay of an exponential moving average of the weights, "
                                     "evaluated instead of the weights; 0 = off", ge=0, lt=1)
    drop_path: float | None = option(None, "stochastic depth: in training, each image skips "
                                           "each residual block's body with this probability "
                                           "(needs --block residual or bottleneck); 0 = off",
                                     ge=0, lt=1)
    teacher: str = option("", "knowledge distillation: a finished image-classifier run's folder "
                              "(e.g. cifar-speedrun's, on the same split; a folder of runs is "
                              "an ensemble); train on a blend of each label and its predicted "
                              "probabilities (the train accuracy then counts agreement with "
                              "the blend's top class)", metavar="RUN_DIR")
    teacher_weight: float = option(1.0, "the teacher's share of each training target (with "
                                        "--teacher); the label has the rest", ge=0, le=1)
    teacher_temperature: float = option(1.0, "softmax temperature of the teacher's "
                                             "probabilities (with --teacher)", gt=0, le=100)

    RECIPES = RECIPES

    def __post_init__(self) -> None:
        self.check_common()
        if self.image_size > 32:  # its ZCA is a (3 S^2)^2 matrix: 600 MB at 64
            raise ConfigError(f"--image-size {self.image_size}: the MLP reads every pixel, and "
                              "its whitening grows with the square of their number; 32 at most")
        if self.drop_path and (self.block or RECIPES[self.recipe]["block"]) == "plain":
            raise ConfigError("--drop-path needs residual blocks: add --block residual "
                              "(or bottleneck)")
        if self.teacher:
            if self.mixup or self.cutmix:
                raise ConfigError("--teacher gives each image its own soft target; it does not "
                                  "combine with --mixup or --cutmix")


# --quick: the defaults it takes first (a flag you give still wins)
QUICK = {**IMAGE_QUICK, "widths": (64, 64), "epochs": 2, "batch_size": 64}
