"""The process the checks run in: ``python -m nnlab.course.worker DIR SEED NAME...`` imports
what the named checks need (torch, nnlab's reference modules), says ``ready``, then runs each
check on the student's files in DIR and prints one JSON line per check, ``[passed, said,
hint]``, as it finishes (see :func:`nnlab.course.checks.run_checks`): the time limits count
the student's code, not the imports."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from nnlab.course.checks import CHECKS, READY, STREAM, one

if __name__ == "__main__":
    folder, seed = Path(sys.argv[1]), int(sys.argv[2])
    for needed in sorted({m for name in sys.argv[3:] for m in CHECKS[name].needs}):
        importlib.import_module(needed)
    print("\n" + READY, flush=True)
    for name in sys.argv[3:]:
        print("\n" + json.dumps(one(folder, name, seed + STREAM[name])), flush=True)
