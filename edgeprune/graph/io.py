"""File helpers: hashing and atomic writes, so an error never leaves a partial output behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    from edgeprune.errors import InputError

    target = Path(path)
    if target.is_dir():
        raise InputError(f"the output path {target} is a directory; give a file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(
            f"cannot write {target}: its folder is not a directory, cannot be created or is not writable "
            f"({exc.strerror or exc}); choose a writable folder"
        ) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_files_atomic(files: dict[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files as one: each to a temporary file beside it first, then all renamed into place.

    An error (or Ctrl-C) before the renames leaves none of them; the renames themselves are quick.
    """
    written: list[Path] = []
    with contextlib.ExitStack() as stack:
        temps = [(stack.enter_context(atomic_path(path)), data) for path, data in files.items()]
        for tmp, data in temps:
            tmp.write_bytes(data)
        written = [Path(p) for p in files]
    return written
