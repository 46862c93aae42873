"""nnlab's own experiments, one module each (its record named ``EXPERIMENT``), and the
experiment contract they are built on (:mod:`nnlab.registry`, re-exported here: the record
:class:`Experiment`, the registry's :func:`get`, :func:`names`, :func:`experiment_of` ...)."""

from nnlab.registry import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    Experiment,
    check,
    describe,
    experiment_of,
    flags_of,
    from_file,
    generic_summary,
    get,
    listing,
    names,
    reference,
    reference_or_name,
)

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "Experiment", "check", "describe", "experiment_of",
           "flags_of", "from_file", "generic_summary", "get", "listing", "names", "reference",
           "reference_or_name"]
