"""Files a run writes and reads back, atomically and checked: the part of the engine that
needs no torch (``nnlab list``, ``--help`` and the folder checks read JSON with it)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from nnlab.errors import NnlabError, WriteFailed


def _replace_atomically(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    try:  # make the rename itself durable (POSIX); not every filesystem allows it
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _write_bytes(f: Any, data: bytes, path: Path) -> None:
    """The one write of every file nnlab writes (``path``: where it goes; the tests make
    the disk full here)."""
    f.write(data)


def write_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """``data`` to ``path`` through a temporary file of its own in the same folder (two
    writers can never share one), fsync and rename: a reader sees the old file or the new
    one, never half. A write that fails (a full disk, a quota, a read-only or failing disk)
    removes its temporary file, leaves the old file as it was and raises WriteFailed naming
    the file and the cause. ``durable=False`` skips the fsyncs (a file rewritten every epoch,
    whose durability the checkpoints give)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteFailed(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would keep a run from a class
        with os.fdopen(fd, "wb") as f:
            _write_bytes(f, data, path)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if durable:
            _replace_atomically(Path(tmp), path)
        else:
            os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise WriteFailed(f"cannot write {path}: {e.strerror or e}") from None
    return path


def _umask() -> int:
    """The process's umask (read by setting it, then setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _no_link_out(path: Path) -> None:
    """Refuse a file of a run folder that is a link to somewhere outside that folder."""
    if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
        raise NnlabError(f"{path}: a link to a file outside its folder; nnlab does not follow it")


MAX_JSON_BYTES = 64 * 2**20  # no file nnlab writes as JSON comes near this


def read_json(path: str | Path, kind: type = dict) -> Any:
    """What :func:`write_json_atomic` wrote to ``path``, or an empty ``kind`` where there is
    no such file. A file that is not a JSON ``kind`` (an object; a list where asked for) or
    that is truncated, damaged, a link out of its folder or absurdly large is one NnlabError
    naming it."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return kind()
    _no_link_out(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise NnlabError(f"{path}: {path.stat().st_size} bytes, too large to be a file "
                             "nnlab wrote")
        record = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise NnlabError(f"{path}: not readable JSON") from None
    except OSError as e:
        raise NnlabError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not isinstance(record, kind):
        what = "an object" if kind is dict else f"a {kind.__name__}"
        raise NnlabError(f"{path}: not a JSON {what}, so not a file nnlab wrote")
    return record


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Indented JSON to ``path`` atomically (:func:`write_atomic`)."""
    return write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())
