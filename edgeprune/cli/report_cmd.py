"""`report DIR`: report.md and report.html again from DIR/report.json."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
def report_command(folder: Path) -> None:
    """Re-render DIR/report.md and DIR/report.html from DIR/report.json (both files, or neither).

    The html also shows an `edgeprune analyze` curve (superization.json) and a sweep (sweep.json) found in
    DIR. Exit codes: 0 done; 2 no report.json, a damaged one, or one of another schema version (the message
    says which version, and how to write a current one).
    """
    from edgeprune.reporting.files import rerender

    written = rerender(folder)
    click.echo("wrote " + ", ".join(str(path) for path in written.values()))
