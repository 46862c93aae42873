"""The study's reporting wing, on top of the public API: ``reproduce`` (every documented
result and the study's profiles as ``nnlab run`` commands), the report (its sections declared
in :mod:`nnlab.study.layout`, its claims and verdicts in :mod:`nnlab.study.claims`, its pages
written by :mod:`nnlab.study.render`), the tables shared by the report and the documentation
(:mod:`nnlab.study.tables`) and the documentation's generated blocks
(:mod:`nnlab.study.docs`). It reads run folders and records; nothing below it imports it
(the import contract in ``pyproject.toml`` checks that)."""
