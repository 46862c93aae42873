"""Each part of a `nnlab reproduce --profile` run: the recorded cost (PROFILE_PARTS: the README's
upper ends; not the measured minutes the full plan uses on a native-bf16 CPU) beside the wall time
its profile.json recorded (every invocation that worked on the part, summed), the CPU its
config.json names (a profile resumed across machines is timed on each), and the totals.

    python docs/results/profile_table.py docs/results/study-profile

Parts not finished (no metrics.json) are listed with the seconds they have cost so far.
"""

import json
import sys
from pathlib import Path

from nnlab.reproduce import PROFILE_PARTS

folder = Path(sys.argv[1])
record = json.loads((folder / "profile.json").read_text())
seconds = record.get("seconds", {})
plan = {name: minutes for name, _, _, minutes in PROFILE_PARTS[record["profile"]]}
print("| part | plan (min) | measured (min) | measured / plan | state | CPU |")
print("| --- | ---: | ---: | ---: | --- | --- |")
done_s = done_plan = 0.0
for name, minutes in plan.items():
    s = seconds.get(name)
    finished = (folder / name / "metrics.json").exists()
    config = folder / name / "config.json"
    prov = json.loads(config.read_text()).get("provenance", {}) if config.exists() else {}
    cpu = prov.get("cpu", "") + {True: " (native bf16)", False: " (no native bf16)"}.get(
        prov.get("cpu_native_bf16"), "")
    if finished and s is not None:
        done_s, done_plan = done_s + s, done_plan + minutes
    print(f"| {name} | {minutes:g} | {'—' if s is None else f'{s / 60:.1f}'} | "
          f"{'—' if s is None else f'{s / 60 / minutes:.2f}'} | "
          f"{'finished' if finished else 'started' if s is not None else 'not started'} | "
          f"{cpu} |")
left = sum(m for n, m in plan.items() if not (folder / n / "metrics.json").exists())
print(f"\nfinished: {done_s / 60:.1f} min measured against {done_plan:.0f} min planned; "
      f"still to run: about {left:.0f} min by the plan")
