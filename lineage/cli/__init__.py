"""The `lineage` command: a thin layer over the Python API. Errors print one line and exit 1."""

from __future__ import annotations

import atexit
import gc
import sys
from typing import Any

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


_freeze_at_exit = False


def main(argv: list[str] | None = None) -> Any:
    """The `lineage` command (console script and `python -m lineage`)."""
    global _freeze_at_exit
    if not _freeze_at_exit:
        # At exit, skip the interpreter's last garbage collection over every object the imports made (~30 ms of a
        # short command's CPU, numpy and pyarrow's modules mostly): the process ends anyway, and atexit handlers
        # registered later (Ray's shutdown, temporary folders) run before this one.
        atexit.register(gc.freeze)
        _freeze_at_exit = True
    set_entry_point()
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="lineage")

