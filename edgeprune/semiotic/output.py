"""Writing a folder of result files all-or-nothing: staged beside the targets, then moved in."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from edgeprune.errors import InputError


def write_files(out: str | os.PathLike, files: Mapping[str, bytes]) -> dict[str, Path]:
    """Write every ``name -> bytes`` into folder ``out``; on any error none of them replaces an existing file.

    The bytes are all made before this is called, so the only failures left are the file system's.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".edgeprune-", dir=out))
    except OSError as exc:
        raise InputError(f"cannot write to {out} ({exc.strerror or exc}); choose a writable folder") from exc
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
            os.chmod(staging / name, 0o644)
        for name in files:
            os.replace(staging / name, out / name)
    except OSError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise InputError(f"cannot write to {out} ({exc.strerror or exc}); choose a writable folder") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: out / name for name in files}
