"""The flags of ``cifar-speedrun`` and Muon's learning-rate rule, torch-free: ``nnlab run
cifar-speedrun --help`` reads them."""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.config import LR_MAX, option
from nnlab.errors import ConfigError
from nnlab.vision.options import QUICK as IMAGE_QUICK
from nnlab.vision.options import ImageOptions

BN_EPS = 1e-2  # nnlab.models.cnn.BN_EPS (a test keeps them the same)

# Muon's peak lr against the planned number of optimizer steps, lr = A * steps^-B: a power
# law through the two lrs found best by a sweep (0.24 at 76 steps, 0.1 at 1,400), checked at
# 195 steps, a size it was not fitted on (docs: Part II, a fast CNN).
RULE_A, RULE_B = 0.88, 0.30


def muon_lr_rule(steps: int) -> float:
    """Muon's peak learning rate for a run of ``steps`` optimizer steps (see RULE_A)."""
    return round(RULE_A * max(steps, 1) ** -RULE_B, 4)


@dataclass
class Config(ImageOptions):
    widths: tuple[int, ...] = option((64, 256, 256), "channels of the three conv groups")
    epochs: int = option(8, "passes over the training split", gt=0)
    batch_size: int = option(1024, "images per step", gt=0)
    lr: float = option(0.75, "peak learning rate for a batch of 512 (scaled linearly)",
                       gt=0, le=LR_MAX)
    bias_lr_scale: float = option(64.0, "BatchNorm shifts learn this many times faster (their "
                                  "weight decay divided by it, so all decay alike per step)",
                                  gt=0)
    momentum: float = option(0.85, "Nesterov momentum", ge=0, lt=1)
    weight_decay: float = option(5e-5, "weight decay (L2, as SGD's weight_decay)", ge=0)
    optimizer: str = option("muon", "muon: the conv filters on Muon, the rest (head, BatchNorm "
                            "shifts, whitening bias) on Nesterov SGD; sgd: Nesterov SGD for "
                            "all, the recipe before Muon", choices=("muon", "sgd"))
    warmup: float | None = option(None, "fraction of steps warming up linearly; then linear "
                                  "decay to 0", ge=0, lt=1)
    label_smoothing: float = option(0.2, "label smoothing of the cross-entropy", ge=0, lt=1)
    whiten_eps: float = option(5e-4, "eigenvalue floor of the patch whitening", gt=0)
    ema: float = option(0.0, "decay of an EMA of the weights that is evaluated; 0 = off",
                        ge=0, lt=1)
    lookahead: float = option(0.0, "lookahead: every --lookahead-k steps the slow weights move "
                              "towards the fast ones, which restart from them; the fraction "
                              "moved falls from 1 to this value over the run (as 1 - (1 - "
                              "value) x progress^3); 0 = off", ge=0, le=1)
    lookahead_k: int = option(5, "steps between lookahead updates", gt=0)
    muon_lr: float | None = option(None, "Muon's peak lr for the conv filters (momentum "
                                   "orthogonalised; each filter bank's norm pinned to "
                                   "sqrt(output channels)), on the same schedule; default: "
                                   "from the planned number of steps by muon_lr_rule",
                                   gt=0, le=LR_MAX, shown=f"{RULE_A:g} x steps^-{RULE_B:g}")
    muon_momentum: float = option(0.6, "Muon's Nesterov momentum", ge=0, lt=1)
    muon_ns_steps: int = option(5, "Newton-Schulz iterations that orthogonalise each Muon "
                                   "update (airbench's Muon record uses 3)", ge=1, le=10)
    whiten_bias_epochs: int = option(0, "train the whitening conv's bias for the first N epochs "
                                     "only, then freeze it; 0 = train it throughout", ge=0)
    tta_untranslated: float = option(1 / 3, "weight of the untranslated views in flip+translate "
                                     "TTA (the two shifted pairs share the rest); 1/3 = all six "
                                     "views alike", gt=0, le=1, shown="1/3")
    channels_last: bool = option(True, "NHWC memory layout (faster convolutions on CPUs)")
    compile: bool = option(False, "torch.compile the network (inductor): meant for a GPU; on "
                           "the CPUs measured it was slower (benchmarks/speedrun_compile.py)")
    init: str = option("dirac", "conv init: dirac (identity filters first) or default "
                       "(PyTorch's)", choices=("dirac", "default"))
    bn_eps: float = option(BN_EPS, "BatchNorm's eps: no channel is scaled up more than "
                           "1/sqrt(eps) times (airbench's 1e-12 let flat-background images "
                           "blow up)", gt=0, le=1)

    # Flips alternate between epochs (each image is seen both ways in two epochs). The recipe
    # is the optimizer's: Muon runs without a warm-up, as airbench's Muon record does.
    RECIPE_FIELD = "optimizer"
    RECIPES = {"muon": {"flip": True, "translate": 2, "tta": "flip+translate", "warmup": 0.0},
               "sgd": {"flip": True, "translate": 2, "tta": "flip+translate", "warmup": 0.2}}

    def __post_init__(self) -> None:
        self.check_common()
        if self.optimizer == "sgd" and self.muon_lr is not None:
            raise ConfigError("--muon-lr needs --optimizer muon (the default), not sgd")

    @staticmethod
    def from_format_3(fields: dict) -> dict:
        """Before format 4 BatchNorm's eps was 1e-12: such a run resumes and evaluates with
        it."""
        return {"bn_eps": 1e-12, **fields}

    @staticmethod
    def from_format_2(fields: dict) -> dict:
        """Before format 3 Muon was off unless --muon-lr was above 0: such a run resumes with
        the optimizer it started with."""
        if "optimizer" not in fields:
            muon = bool(fields.get("muon_lr"))
            fields = {**fields, "optimizer": "muon" if muon else "sgd"}
            if not muon:
                fields["muon_lr"] = None
        return fields


# --quick: the defaults it takes first (a flag you give still wins)
QUICK = {**IMAGE_QUICK, "widths": (16, 32, 32), "epochs": 2, "batch_size": 128}
