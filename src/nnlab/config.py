"""What every experiment's ``Config`` dataclass is made of: fields with help, and checks.

The CLI turns each field into a flag (``batch_size`` -> ``--batch-size``) using its type, its
default, ``metadata['help']`` and, when present, ``metadata['choices']``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nnlab.errors import ConfigError


def option(default: Any, help: str, choices: tuple | None = None) -> Any:
    """A dataclass field with a default, a help line for its flag and, optionally, choices."""
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = choices
    return dataclasses.field(default=default, metadata=metadata)


def check_positive(config: Any, *names: str) -> None:
    """Raise ConfigError unless every named field is > 0."""
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise ConfigError(f"--{flag_name(name)} must be > 0, got {value}")


def check_choice(config: Any, name: str) -> None:
    """Raise ConfigError unless the field's value is one of its metadata choices."""
    field = next(f for f in dataclasses.fields(config) if f.name == name)
    value, choices = getattr(config, name), field.metadata["choices"]
    if value not in choices:
        raise ConfigError(f"--{flag_name(name)} must be one of {', '.join(choices)}; got {value!r}")


def parse_sizes(value: str | tuple | list) -> tuple[int, ...]:
    """'512,256' (or (512, 256)) -> (512, 256); ConfigError unless each is a positive integer."""
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        sizes = tuple(_strict_int(s) for s in items)
    except (TypeError, ValueError):
        sizes = ()
    if not sizes or any(s <= 0 for s in sizes):
        raise ConfigError(f"sizes must be positive integers separated by commas, got {value!r}")
    return sizes


def _strict_int(item: object) -> int:
    if isinstance(item, bool) or isinstance(item, float):
        raise ValueError(item)
    return int(str(item).strip()) if isinstance(item, str) else int(item)


def flag_name(field_name: str) -> str:
    return field_name.replace("_", "-")
