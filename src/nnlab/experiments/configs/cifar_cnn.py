"""The flags of ``cifar-cnn`` (Part II), torch-free: ``nnlab run cifar-cnn --help`` reads
them."""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.config import LR_MAX, option
from nnlab.errors import ConfigError
from nnlab.vision.options import QUICK as IMAGE_QUICK
from nnlab.vision.options import ImageOptions

STUDY_LR = {"adam": 1e-3, "sgd": 1e-2}


@dataclass
class Config(ImageOptions):
    optimizer: str = option("both", "adam, sgd, or both from the same initial weights",
                            choices=("adam", "sgd", "both"))
    epochs: int = option(100, "passes over the training split (the study: 100)", gt=0)
    batch_size: int = option(64, "images per step (the study: 64)", gt=0)
    lr: float | None = option(None, "learning rate", gt=0, le=LR_MAX,
                              shown="the study's: adam 0.001, sgd 0.01")
    momentum: float = option(0.0, "SGD momentum (the study: 0)", ge=0, lt=1)
    weight_decay: float = option(0.0, "weight decay (L2, as torch.optim adds it)", ge=0)
    schedule: str = option("constant", "learning-rate schedule, stepped every batch",
                           choices=("constant", "cosine"))
    dropout: float = option(0.0, "dropout before each Linear (the study's listing: none)",
                            ge=0, lt=1)
    channels_last: bool = option(True, "NHWC memory layout (faster convolutions on CPUs)")
    impl: str = option("", "your network in place of nnlab's: a folder whose cnn_model.py "
                           "nnlab course init --part 2 wrote and you completed; the same data, "
                           "initial weights and curves", metavar="DIR", code=True)

    RECIPES = {"study": {"flip": False, "translate": 0, "tta": "none"}}  # no augmentation

    def __post_init__(self) -> None:
        self.check_common()
        if self.image_size != 32:  # five max-pools take 32 x 32 to the 1 x 1 its head reads
            raise ConfigError(f"--image-size {self.image_size}: the study's VGG takes 32 x 32 "
                              "images; cifar-speedrun or your own model take other sizes")


# --quick: the defaults it takes first (a flag you give still wins)
QUICK = {**IMAGE_QUICK, "epochs": 2}
