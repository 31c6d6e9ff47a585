"""The command line: thin commands over the Python API; errors become one line and an exit code."""

from __future__ import annotations

import sys

from edgeprune.cli.app import cli


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning an `EdgepruneError` into one line on stderr and its exit code."""
    from edgeprune.errors import EdgepruneError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="edgeprune", standalone_mode=False)
    except EdgepruneError as exc:
        if debug:
            raise
        print(f"edgeprune: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except _click_exceptions() as exc:
        if _is_abort(exc):  # click turns Ctrl-C into Abort, which has no message to show
            _interrupted()
        exc.show()
        sys.exit(exc.exit_code)


def _interrupted() -> None:
    print("edgeprune: interrupted; nothing was written", file=sys.stderr)
    sys.exit(130)


def _is_abort(exc: BaseException) -> bool:
    import click

    return isinstance(exc, click.exceptions.Abort)


def _click_exceptions():
    import click

    return (click.ClickException, click.exceptions.Abort)


__all__ = ["cli", "main"]
