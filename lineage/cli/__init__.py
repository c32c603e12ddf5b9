"""The `lineage` command: a thin layer over the Python API. Errors print one line and exit 1."""

from __future__ import annotations

import sys
from typing import Any

import click

from lineage.cli.common import LineageGroup, accept_global_options

EPILOG = """\b
Examples:
  lineage init ./store
  lineage --store ./store ingest real.jsonl --origin real --source wordnet-examples --method human
  lineage --store ./store sql "SELECT source, count(*) FROM samples GROUP BY ALL"
  lineage --store ./store stats --by origin,source,generation
"""


@click.group(cls=LineageGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
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


def _register() -> None:
    from lineage.cli import (
        build_cmds,
        demo_cmd,
        diversity_cmd,
        filter_cmds,
        ingest_cmd,
        model_cmds,
        query,
        report_cmds,
        sets_cmds,
        store_cmds,
    )

    modules = (store_cmds, ingest_cmd, query, filter_cmds, sets_cmds, build_cmds, diversity_cmd, model_cmds,
               report_cmds, demo_cmd)
    for module in modules:
        for command in module.COMMANDS:
            accept_global_options(command)
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="lineage")
