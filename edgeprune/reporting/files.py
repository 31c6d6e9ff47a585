"""Writing a run's folder all-or-nothing (model, plan, report.json, report.md, report.html, and a sweep's
files), and re-rendering report.md and report.html from a report.json."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from edgeprune.errors import InputError
from edgeprune.reporting.report import Report
from edgeprune.reporting.schema import errors, plain, read_report

logger = logging.getLogger(__name__)

RUN_FILES = ("model.pruned.onnx", "plan.json", "report.json", "report.md", "report.html")
BESIDE = {"superization": "superization.json", "sweep": "sweep.json"}  # read, when present, by the html


def report_json(report: Report) -> str:
    """report.json's text: strict JSON (NaN written as null), checked against the schema."""
    data = plain(json.loads(report.to_json()))
    problems = errors(data)
    if problems:  # a bug of the writer, not of the run: say so loudly, but do not throw the run away
        logger.warning("report.json does not conform to its schema: %s", "; ".join(problems[:5]))
    return json.dumps(data, indent=1, allow_nan=False) + "\n"


def rendered(data: Mapping, extras: Mapping | None = None) -> dict[str, bytes]:
    """report.md and report.html of a report read back from its JSON (``extras``: files found beside it)."""
    from edgeprune.reporting.html import report_html
    from edgeprune.reporting.markdown import report_markdown

    return {
        "report.md": report_markdown(data).encode("utf-8"),
        "report.html": report_html(data, extras).encode("utf-8"),
    }


def run_files(
    report: Report, plan_data: Mapping, extras: Mapping | None = None, extra: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """Every file of a run but the model, as bytes, all made before anything is written. ``extras``: what
    `beside` found in the output folder; ``extra``: more files to write with them (a sweep's)."""
    text = report_json(report)
    files = {
        "plan.json": (json.dumps(plan_data, indent=1) + "\n").encode("utf-8"),
        "report.json": text.encode("utf-8"),
    }
    files.update(rendered(json.loads(text), extras))
    files.update(extra or {})
    return files


def write_folder(out: Path, files: Mapping[str, bytes], model=None) -> dict[str, Path]:
    """Stage every file (and ``model`` as model.pruned.onnx) in a temporary folder inside ``out``, then move
    them in: all of them, or none."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".edgeprune-", dir=out))
    except OSError as exc:
        raise InputError(f"cannot write to {out} ({exc.strerror or exc}); choose a writable folder") from exc
    names = (["model.pruned.onnx"] if model is not None else []) + list(files)
    try:
        if model is not None:
            model.save(staging / "model.pruned.onnx")
        for name, data in files.items():
            (staging / name).write_bytes(data)
            os.chmod(staging / name, 0o644)
        for name in names:
            os.replace(staging / name, out / name)
    except OSError as exc:
        raise InputError(f"cannot write to {out} ({exc.strerror or exc}); choose a writable folder") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: out / name for name in names}


def beside(folder: Path) -> dict:
    """The files the html shows when they lie beside report.json: an `analyze` curve, a sweep. One that
    cannot be read is left out with a log line: it is not the report."""
    found = {}
    for key, name in BESIDE.items():
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            found[key] = document["curve"] if key == "superization" else document
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("%s left out of report.html: cannot read it (%s)", path, exc)
    return found


def rerender(folder: Path) -> dict[str, Path]:
    """`edgeprune report DIR`: report.md and report.html again from DIR/report.json (both, or neither)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder: give the folder `edgeprune optimize --out` wrote")
    data = read_report(folder / "report.json")
    return write_folder(folder, rendered(data, beside(folder)))
