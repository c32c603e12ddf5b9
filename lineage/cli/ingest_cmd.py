"""`lineage ingest`: one file in, one batch and at most one segment committed."""

from __future__ import annotations

import json
import re

import click

from lineage.cli.common import json_option, open_store, progress_bar, to_json
from lineage.errors import LineageError
from lineage.limits import DEFAULT_MAX_RECORD_BYTES, DEFAULT_MEMORY_LIMIT


def _unescape(template: str | None) -> str | None:
    """`\\n`, `\\t` and `\\\\` typed in a shell template become a newline, a tab and a backslash."""
    if template is None:
        return None
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], template)


def _gen_params(value: str | None) -> dict[str, object] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise LineageError(f"--gen-params is not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(parsed, dict):
        raise LineageError("--gen-params must be a JSON object, e.g. '{\"temperature\": 0.7}'")
    return parsed


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--origin", type=click.Choice(["real", "synthetic"]), help="real or synthetic (or an `origin` column).")
@click.option("--source", help="Source label, e.g. synthetic-v1-paraphrased (or a `source` column).")
@click.option("--method", help="human, web, paraphrase, back-translation, rule-based, self-instruct, ...")
@click.option("--generator", help="Model that wrote synthetic samples.")
@click.option("--generation", type=int, help="Generation of synthetic samples that have no parents.")
@click.option("--license", "license_", help="Licence of the data.")
@click.option("--language", help="BCP-47 language tag, e.g. en, pt-BR, zh-Hant (or a `language` column).")
@click.option("--tag", "tags", multiple=True, help="Tag every sample (repeatable).")
@click.option("--gen-params", help="Generation parameters as a JSON object (prompt template, temperature, ...).")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option(
    "--template",
    help="Build the text from fields, e.g. '{prompt}\\n\\n{response}'; \\n, \\t and \\\\ are a newline, a tab "
    "and a backslash.",
)
@click.option("--id-field", default="id", show_default=True, help="Field holding your own record id.")
@click.option("--parent-field", default="parent_ids", show_default=True, help="Field holding parent id(s).")
@click.option(
    "--format", "input_format", type=click.Choice(["jsonl", "json", "parquet", "csv", "arrow"]), help="Input format."
)
@click.option("--skip-bad", is_flag=True, help="Store the good rows; record every rejected row in the batch.")
@click.option("--allow-missing-parents", is_flag=True, help="Accept parent ids that are not in the store.")
@click.option(
    "--max-record-bytes",
    type=int,
    default=DEFAULT_MAX_RECORD_BYTES,
    show_default=True,
    help="Reject records larger than this.",
)
@click.option("--set", "set_name", help="Add the ingested samples to this set (created if new).")
@click.option(
    "--memory-limit",
    default=None,
    help=f"Memory for staging rows; beyond it they spill to STORE/tmp (default: a tenth of this machine's memory, at "
    f"least {DEFAULT_MEMORY_LIMIT}).",
)
@json_option
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[str, ...],
    license_: str | None,
    gen_params: str | None,
    tags: tuple[str, ...],
    as_json: bool,
    **options: object,
) -> None:
    """Ingest files with their provenance: JSON Lines (.jsonl, .ndjson; .gz and .zst too), JSON arrays (.json),
    Parquet, CSV, Arrow (.arrow) and Hugging Face `save_to_disk` folders. PATHS may be several files,
    globs ('shards/*.jsonl.gz'), directories of shards and `-` (standard input); all are committed at
    once, one batch per file, so a file's parents may be records of a file before it.

    Chat records: `messages` (OpenAI: multi-part content, tool calls) and ShareGPT `conversations`
    (from/value; human -> user, gpt -> assistant) are rendered as `role: content` lines.

    Flags give every row's provenance; a column of the same name (origin, source, method,
    generator, generation, parent_ids, gen_params, license, language, tags) overrides them per row.
    Re-ingesting the same file stores nothing new. Bad rows refuse the whole file (one line: file,
    line and field of the first, and how many others) unless --skip-bad.

    \b
    Examples:
      lineage ingest real.jsonl --origin real --source wordnet-examples --method human --license WordNet-3.0
      lineage ingest para.jsonl --origin synthetic --source synthetic-v1-paraphrased \\
          --method paraphrase --generator llama-3-8b --parent-field parent_id
      lineage ingest chat.jsonl --origin synthetic --source chat-v1 --generation 1
      lineage ingest qa.jsonl --origin real --source qa --template '{prompt}\\n\\n{response}'
    """
    store = open_store(ctx)
    options["template"] = _unescape(options.get("template"))  # type: ignore[arg-type]
    unit = store.ingest_unit(paths, input_format=options.get("input_format"))  # type: ignore[arg-type]
    with progress_bar(f"ingest {' '.join(paths)}", unit=unit) as progress:
        results = store.ingest_paths(
            paths, progress=progress, license=license_, tags=tags, gen_params=_gen_params(gen_params), **options
        )
    if as_json:
        rows = [r.__dict__ | {"rejects": [x.__dict__ for x in r.rejects]} for r in results]
        click.echo(to_json(rows[0] if len(rows) == 1 else rows))
        return
    for result in results:
        click.echo(f"{result.input_uri}: {result.summary()}")
        for reject in result.rejects[:10]:
            click.echo(f"rejected {reject.describe(result.input_uri)}", err=True)
        if result.rows_rejected > 10:
            click.echo(f"... {result.rows_rejected - 10:,} more in `batches.rejects`", err=True)


COMMANDS = [ingest]
