"""``python -m nnlab.docs``: the documentation's generated tables and figures, rebuilt from
the run folders under ``docs/results/`` (or checked with ``--check``). The work is
:mod:`nnlab.study.docs`'s; this name is the command the pages cite."""

import sys

from nnlab.study.docs import main

if __name__ == "__main__":
    sys.exit(main())
