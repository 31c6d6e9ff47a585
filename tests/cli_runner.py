"""Running the command line in-process from a test: exit code, stdout and stderr."""

from __future__ import annotations

from edgeprune.cli import main


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()  # drop whatever earlier steps of the test printed
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
