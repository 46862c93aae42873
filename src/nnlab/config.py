"""What every experiment's ``Config`` dataclass is made of: fields declared once, checked once.

The CLI turns each field into a flag (``batch_size`` -> ``--batch-size``) from its type, its
default, ``metadata['help']`` and, when present, ``metadata['choices']``. One vocabulary for
every experiment:

* ``None`` means "the recipe's value": the experiment's ``RECIPES`` (one recipe per value of
  its ``recipe`` field, or a single one when it has none) says what runs, ``--help`` prints
  it for each recipe, and ``resolve()`` fills it in before a run folder records the config.
* numeric ranges are declared on the field (``option(0.0, "...", ge=0, lt=1)``) and checked by
  :func:`validate`, which names the flag in its one-line error; floats must be finite.
* sizes (``512,256``) are tuples of positive integers, parsed the same way everywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from typing import Any

from nnlab.errors import ConfigError

_BOUNDS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b),
           "le": ("<=", lambda v, b: v <= b), "lt": ("<", lambda v, b: v < b)}
SEED_MAX = 2**32 - 1  # NumPy's and scikit-learn's seeds are 32-bit
# A learning rate above this is a typo (1e12): with BatchNorm such a run may even "train"
# without a NaN, the weights growing until the step is tiny again, and report nonsense.
LR_MAX = 10.0
DEVICES = ("auto", "cuda", "mps", "cpu")  # the choices of a Config's device field
PRECISIONS = ("auto", "bf16", "fp32")  # and of its precision field


def option(default: Any, help: str, choices: tuple | None = None, *, ge: float | None = None,
           gt: float | None = None, le: float | None = None, lt: float | None = None,
           shown: str | None = None, metavar: str | None = None, code: bool = False) -> Any:
    """A dataclass field: its default, the help line of its flag, optional choices, bounds
    (``ge``/``gt``/``le``/``lt``) and, for a ``None`` default that no ``RECIPES`` entry
    describes, ``shown``: what ``--help`` prints as the default. ``code``: the field names a
    user's code (a folder of modules), which a resume imports only when the user names it
    again: nnlab never imports code that a run folder names."""
    metadata: dict[str, Any] = {"help": help}
    if code:
        metadata["code"] = True
    if choices is not None:
        metadata["choices"] = choices
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt))
              if v is not None}
    if bounds:
        metadata["bounds"] = bounds
    if shown is not None:
        metadata["shown"] = shown
    if metavar is not None:
        metadata["metavar"] = metavar
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field_name: str) -> str:
    return field_name.replace("_", "-")


def field_kind(config_cls: type, name: str) -> type:
    """A field's type without ``| None``: int, float, str, bool or tuple."""
    kind = typing.get_type_hints(config_cls)[name]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return tuple if typing.get_origin(kind) is tuple else kind


def parse_sizes(value: str | tuple | list, flag: str = "sizes") -> tuple[int, ...]:
    """'512,256' (or (512, 256)) -> (512, 256); ConfigError naming ``flag`` unless each is a
    positive integer."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        sizes = tuple(_strict_int(s) for s in items)
    except (TypeError, ValueError, OverflowError):
        sizes = ()
    if not sizes or any(s <= 0 for s in sizes):
        raise ConfigError(f"{flag} takes positive integers separated by commas (e.g. 512,256),"
                          f" got {_short(value)}")
    return sizes


def _strict_int(item: object) -> int:
    if isinstance(item, bool | float):
        raise ValueError(item)
    return int(item.strip()) if isinstance(item, str) else int(item)  # type: ignore[arg-type]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_type(flag: str, kind: type, value: Any) -> Any:
    """``value`` as a ``kind`` (sizes parsed into a tuple), or ConfigError naming the flag."""
    if kind is tuple:
        return parse_sizes(value, flag)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise ConfigError(f"{flag} must be a finite number, got {value}")
        value = float(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"{flag} takes {'a whole number' if kind is int else kind.__name__},"
                          f" got {_short(value)}")
    return value


def validate(config: Any) -> None:
    """Check (and normalise in place) every field of a Config: its type, choices and declared
    bounds; ``None`` passes for a field whose default is ``None`` (the recipe's value).
    Raises ConfigError with a one-line message that names the flag."""
    cls = type(config)
    for field in dataclasses.fields(config):
        flag, value = f"--{flag_name(field.name)}", getattr(config, field.name)
        if value is None and field.default is None:
            continue  # the recipe's value
        if field.default == () and isinstance(value, tuple | list | str) and not value:
            setattr(config, field.name, ())  # no sizes (a sweep not asked for): (), [] or ""
            continue
        value = _check_type(flag, field_kind(cls, field.name), value)
        setattr(config, field.name, value)
        choices = field.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{flag} must be one of {', '.join(map(str, choices))}; "
                              f"got {_short(value)}")
        for key, bound in field.metadata.get("bounds", {}).items():
            sign, holds = _BOUNDS[key]
            if not holds(value, bound):
                raise ConfigError(f"{flag} must be {sign} {bound:g}, got {value}")
    if hasattr(config, "seed") and not 0 <= config.seed <= SEED_MAX:
        raise ConfigError(f"--seed must be between 0 and {SEED_MAX}, got {config.seed}")


@dataclasses.dataclass
class Options:
    """The base of a Config (nnlab's own subclass it; any dataclass works as well): what a
    Config may declare beyond its fields, each optional, and the check every config gets.

    ``RECIPES``: ``{recipe: {field: value}}``, the values of the fields left ``None`` ("the
    recipe's value"; ``--help`` prints them). ``RECIPE_FIELD``: the field that names the
    recipe (default ``recipe``; without one, the first recipe). ``from_format_N(fields) ->
    fields``, a static method: a ``config.json`` of format N in format N + 1, when a default
    of this Config changed (keep what ran). A ``seed`` field is checked to lie in 0 to
    ``SEED_MAX``. The declared types, choices and bounds (:func:`option`) are checked when a
    config is made (here, and by the engine for every config it builds, whatever a
    subclass's ``__post_init__`` does)."""

    RECIPES: typing.ClassVar[dict[str, dict[str, Any]]] = {}
    RECIPE_FIELD: typing.ClassVar[str] = "recipe"

    def __post_init__(self) -> None:
        validate(self)


def _declared(cls: type, name: str) -> Any:
    """A Config class's ``RECIPES`` or ``RECIPE_FIELD``: its own, else :class:`Options`'s."""
    return getattr(cls, name, getattr(Options, name))


def recipe_name(config: Any) -> str:
    """The recipe a config draws its None fields from: its ``RECIPE_FIELD`` ('recipe' unless
    the class names another), else the class's first recipe."""
    field = _declared(type(config), "RECIPE_FIELD")
    return getattr(config, field, None) or next(iter(type(config).RECIPES))


def resolve(config: Any) -> Any:
    """A copy of ``config`` with every ``None`` replaced by its recipe's value (from the class's
    ``RECIPES``), checked. No ``__post_init__`` runs on the copy."""
    recipes = _declared(type(config), "RECIPES")
    recipe = recipes.get(recipe_name(config), {}) if recipes else {}
    out = copy.copy(config)
    for name, value in recipe.items():
        if getattr(out, name) is None:
            setattr(out, name, value)
    validate(out)
    return out


def shown_default(config_cls: type, name: str) -> str:
    """What ``--help`` prints as a field's default: the value, or for ``None`` the value each
    recipe gives it (``best: 0.003; study: 0.001``)."""
    field = next(f for f in dataclasses.fields(config_cls) if f.name == name)
    if "shown" in field.metadata:
        return field.metadata["shown"]
    if field.default is not None:
        return shown(field.default)
    recipes = {r: v[name] for r, v in _declared(config_cls, "RECIPES").items() if name in v}
    if len(set(map(shown, recipes.values()))) == 1:
        return shown(next(iter(recipes.values())))
    if recipes:
        return "; ".join(f"{r}: {shown(v)}" for r, v in recipes.items())
    return "none"


def shown(value: Any) -> str:
    """A config value as it is typed on the command line: (512, 256) -> 512,256."""
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


# config.json's format: 1 (no ``config_format`` key) spelled "the recipe's value" as
# 'recipe', -1 or a 0 learning rate and TTA as on/off or a bool; 2 is today's vocabulary;
# 3 and 4 changed defaults of some Configs (their ``from_format_N`` keep what ran).
CONFIG_FORMAT = 4
_LEGACY_NONE = ("recipe", -1, -1.0)
_LEGACY = {"tta": {True: "flip", False: "none", "on": "flip", "off": "none"},
           "flip": {"on": True, "off": False}}


def migrate(config_cls: type, recorded: dict) -> dict:
    """The fields of ``config_cls`` that a ``config.json`` records, in today's format: one
    step per format version (1 -> 2: the vocabulary; N -> N + 1 from 2 on: what a Config class
    changed, by its ``from_format_N``, when it has one). A config.json of a newer format than
    this nnlab reads is refused (ConfigError)."""
    version = recorded.get("config_format", 1)
    if not isinstance(version, int) or version > CONFIG_FORMAT:
        raise ConfigError(f"config format {version!r} is newer than this nnlab reads "
                          f"({CONFIG_FORMAT}); use the nnlab that wrote it")
    names = {f.name for f in dataclasses.fields(config_cls)}
    out = {k: v for k, v in recorded.items() if k in names}
    if version < 2:
        out = _from_format_1(config_cls, out)
    for step in range(max(version, 2), CONFIG_FORMAT):
        if hasattr(config_cls, f"from_format_{step}"):
            out = getattr(config_cls, f"from_format_{step}")(out)
    return out


def _from_format_1(config_cls: type, fields: dict) -> dict:
    """Format 1 -> 2: 'recipe', -1 (and a 0 learning rate) mean None; on/off and bool TTA
    become today's names."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    out = {}
    for name, value in fields.items():
        if defaults[name] is None and not isinstance(value, bool) and (
                value in _LEGACY_NONE or (name == "lr" and value == 0)):
            value = None
        elif name in _LEGACY and isinstance(value, str | bool):
            value = _LEGACY[name].get(value, value)
        out[name] = value
    return out
