"""The `lineage` command: a thin layer over the Python API. Errors print one line and exit 1."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

import click

from lineage.cli.common import LineageGroup, set_entry_point

EPILOG = """\b
Examples:
  lineage init ./store
  lineage --store ./store ingest real.jsonl --origin real --source wordnet-examples --method human
  lineage --store ./store sql "SELECT source, count(*) FROM samples GROUP BY ALL"
  lineage --store ./store stats --by origin,source,generation
"""


# Where each command lives: a command's module is imported when the command runs (or `--help` lists them all),
# so `lineage sql` does not pay for defining the other commands' options. tests/test_startup.py checks this map
# against the modules' COMMANDS.
COMMAND_MODULES = {
    **dict.fromkeys(["init", "doctor", "gc", "compact", "backup", "migrate", "status"], "store_cmds"),
    "ingest": "ingest_cmd",
    **dict.fromkeys(["sql", "show", "stats"], "query"),
    **dict.fromkeys(["filter", "runs"], "filter_cmds"),
    **dict.fromkeys(["set", "takedown", "review", "decisions"], "sets_cmds"),
    **dict.fromkeys(["build", "builds", "diff", "export"], "build_cmds"),
    "diversity": "diversity_cmd",
    **dict.fromkeys(["model", "models", "eval", "check"], "model_cmds"),
    **dict.fromkeys(["attribute", "report"], "report_cmds"),
    "demo": "demo_cmd",
}


@click.group(
    cls=LineageGroup,
    lazy_commands=COMMAND_MODULES,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--store",
    "store_path",
    envvar="LINEAGE_STORE",
    default="./lineage-store",
    show_default=True,
    help="Store directory (or set LINEAGE_STORE).",
)
@click.option("--as-of", type=int, default=None, help="Read the store as it was at this version.")
@click.option("--wait", type=float, default=0.0, help="Seconds to wait for another writer's lock.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars nor progress lines on stderr.")
@click.version_option(package_name="lineage")
@click.pass_context
def cli(ctx: click.Context, store_path: str, as_of: int | None, wait: float, debug: bool, quiet: bool) -> None:
    """lineage: sample-level provenance for real and synthetic training data.

    Global options (--store, --as-of, --wait, --debug, --quiet) go before or after the command.

    \b
    Tab completion, in ~/.bashrc (zsh: zsh_source in ~/.zshrc):
      eval "$(_LINEAGE_COMPLETE=bash_source lineage)"
    """
    ctx.obj = {"store_path": store_path, "as_of": as_of, "wait": wait, "debug": debug, "quiet": quiet}


def main(argv: list[str] | None = None) -> NoReturn:
    """The `lineage` command (console script and `python -m lineage`): the command, then the process's end with
    its exit status (`_end`)."""
    _end(run(argv))


def run(argv: list[str] | None = None) -> object:
    """Run the command `argv` (default: the process's arguments) as the `lineage` command does, and return the
    status it would exit with (what click passes to `sys.exit`), leaving the process running."""
    set_entry_point()
    try:
        cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="lineage")
    except SystemExit as exc:
        return exc.code
    return 0


def _end(status: object) -> NoReturn:
    """End the process as `sys.exit(status)` would, without the interpreter's teardown. Teardown destroys the DuckDB
    objects still alive while DuckDB's threads may still call into Python, and under load it aborted about one
    `lineage sql` in 160 *after* the command had succeeded and printed its result ("terminate called after
    throwing an instance of ''", exit 134; duckdb/duckdb#13904): a script saw a failure where there was none.
    The command's work is committed by now; of teardown, what matters is done here: threading's exit hooks run and
    non-daemon threads are waited for, atexit handlers run (Ray's shutdown, temporary folders) and the standard
    streams are flushed.
    (It also skips the last garbage collection over every object the imports made: ~30 ms of a short command.)"""
    # What the interpreter does before its teardown, in its order: threading's exit hooks (a thread pool left open
    # lets its workers go) and the wait for non-daemon threads, then the atexit handlers.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status
    else:  # sys.exit("message") prints it and exits 1
        print(status, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`), or a stream already closed
            if stream is sys.stdout and code == 0:
                code = 141  # as `LineageGroup.invoke` ends on a broken pipe
    os._exit(code)
