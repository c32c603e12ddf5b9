"""quality: Gopher/C4-style heuristics per sample, vectorised with polars over each Arrow batch.

Each rule computes one value per sample and compares it with a bound (a param). A sample fails when any
rule fails; the reason names every failing rule in a fixed order (`low_quality:top_2gram_fraction,no_stop_words`)
so reasons group well in SQL.

The score is defined through each rule's relative margin: `(value - max) / max` for an upper bound,
`(min - value) / min` for a lower bound; positive means the rule fails, by that fraction of its bound.
* drop: the value of the failing rule with the largest relative margin (the worst rule).
* keep: the headroom, the smallest relative margin by which the sample passes (0 = on a bound).

Thresholds follow Gopher (Rae et al. 2021, appendix A) except where our samples differ: Gopher judges web
documents of 50+ words, our samples are single sentences and glosses (the WordNet fixtures have 6-30 words).
So `min_words` is 3 (fewer words are not a sentence), and the stop-word rule, which a terse gloss fails
naturally, only applies to texts of at least `stop_words_min_words` words (20: about where fluent English
reliably has two of those stop words). Top n-gram fractions count only n-grams that occur at least twice:
in a document of 50+ words a single occurrence is a small fraction, in a 6-word sentence any 2-gram
covers a third of the text, and it is repetition that the rule is after.

Presets (`preset`): those bounds are for prose (`web`). Instruction data (Alpaca's `### Instruction:` layout,
prompt/response templates) and chats (`role: content` lines) are not prose: headings are symbols, answers
are short and terse, turns repeat their role words. Each preset changes only the bounds listed in `PRESETS`;
a bound given as a param wins over any preset. `auto` (the default) picks a preset per source, from how its
records were ingested (`preset_sql`): from `messages` or `conversations`, `chat`; through a `--template`, as
Alpaca records or as `[INST]` texts, `instruction`; else `web`. The run's summary says which source got which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import Field, ValidationInfo, field_validator

from lineage.filters.base import FilterParams, SampleFilter, decisions, register

if TYPE_CHECKING:
    import polars as pl

    from lineage.core.handle import StoreCore

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
NGRAM_SIZES = (2, 3, 4)
_ELLIPSIS = r"\.\.\.|…"
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»…—–"


Preset = Literal["web", "instruction", "chat"]

# The Gopher bounds (see the module doc): the `web` preset, and what the other presets start from.
WEB: dict[str, float] = {
    "min_words": 3,
    "max_words": 100_000,
    "min_mean_word_length": 3.0,
    "max_mean_word_length": 10.0,
    "max_symbol_ratio": 0.1,
    "max_ellipsis_lines": 0.3,
    "max_duplicate_lines": 0.3,
    "max_duplicate_paragraphs": 0.3,
    "max_top_2gram_fraction": 0.20,
    "max_top_3gram_fraction": 0.18,
    "max_top_4gram_fraction": 0.16,
    "min_alpha_words": 0.8,
    "min_stop_words": 2,
    "stop_words_min_words": 20,
}
PRESETS: dict[str, dict[str, float]] = {
    "web": {},
    # `### Instruction:` headings are symbols; answers are short ("Paris.", "Yes."), lists repeat lines, code and
    # arithmetic have long, short or non-alphabetic words ("What is 2 + 2?" / "4"); nothing says an answer has
    # stop words.
    "instruction": {
        "min_words": 2,
        "min_mean_word_length": 1.5,
        "max_mean_word_length": 15.0,
        "max_symbol_ratio": 0.5,
        "max_duplicate_lines": 0.5,
        "max_top_2gram_fraction": 0.4,
        "max_top_3gram_fraction": 0.35,
        "max_top_4gram_fraction": 0.3,
        "min_alpha_words": 0.3,
        "min_stop_words": 0,
    },
    # `user:`/`assistant:` lines: short turns ("ok, thanks", "4"), role words repeating every turn, emoticons, and
    # answers that echo the question's words ("define lock up" / "lock up the house").
    "chat": {
        "min_words": 2,
        "min_mean_word_length": 2.0,
        "max_symbol_ratio": 0.3,
        "max_ellipsis_lines": 0.5,
        "max_duplicate_lines": 0.5,
        "max_top_2gram_fraction": 0.4,
        "max_top_3gram_fraction": 0.35,
        "max_top_4gram_fraction": 0.3,
        "min_alpha_words": 0.3,
        "min_stop_words": 0,
    },
}


class QualityParams(FilterParams):
    """Bounds left unset (None) come from the preset; `auto` picks the preset per source."""

    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=1)
    min_mean_word_length: float | None = Field(None, ge=0.0)
    max_mean_word_length: float | None = Field(None, gt=0.0)
    max_symbol_ratio: float | None = Field(None, ge=0.0)
    max_ellipsis_lines: float | None = Field(None, ge=0.0, le=1.0)
    max_duplicate_lines: float | None = Field(None, ge=0.0, le=1.0)
    max_duplicate_paragraphs: float | None = Field(None, ge=0.0, le=1.0)
    max_top_2gram_fraction: float | None = Field(None, ge=0.0, le=1.0)
    max_top_3gram_fraction: float | None = Field(None, ge=0.0, le=1.0)
    max_top_4gram_fraction: float | None = Field(None, ge=0.0, le=1.0)
    min_alpha_words: float | None = Field(None, ge=0.0, le=1.0)
    min_stop_words: int | None = Field(None, ge=0)
    stop_words_min_words: int | None = Field(None, ge=0)
    preset: Literal["auto", "web", "instruction", "chat"] = "auto"
    # Set on the driver by `prepare` for `auto` (source -> preset); not a param: excluded from the run's params.
    sources: dict[str, str] = Field(default_factory=dict, exclude=True)

    @field_validator("max_words", "max_mean_word_length")
    @classmethod
    def _not_below_min(cls, value: float | None, info: ValidationInfo) -> float | None:
        low_name = str(info.field_name).replace("max_", "min_")
        low = info.data.get(low_name)
        if value is not None and low is not None and value < low:
            raise ValueError(f"must be at least {low_name} ({low})")
        return value

    def bounds(self, preset: str) -> dict[str, float]:
        """Every bound for samples judged by `preset`: the web bounds, the preset's, then the params given."""
        given = {k: v for k, v in self.model_dump(exclude={"preset", "sources"}).items() if v is not None}
        return WEB | PRESETS[preset] | given

    def preset_of(self, source: str | None) -> str:
        if self.preset != "auto":
            return self.preset
        return self.sources.get(str(source), "web")


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    bound: str  # the param holding the threshold
    kind: Literal["min", "max"]


RULES = (
    Rule("too_few_words", "words", "min_words", "min"),
    Rule("too_many_words", "words", "max_words", "max"),
    Rule("short_words", "mean_word_length", "min_mean_word_length", "min"),
    Rule("long_words", "mean_word_length", "max_mean_word_length", "max"),
    Rule("symbol_ratio", "symbol_ratio", "max_symbol_ratio", "max"),
    Rule("ellipsis_lines", "ellipsis_lines", "max_ellipsis_lines", "max"),
    Rule("duplicate_lines", "duplicate_lines", "max_duplicate_lines", "max"),
    Rule("duplicate_paragraphs", "duplicate_paragraphs", "max_duplicate_paragraphs", "max"),
    *(Rule(f"top_{n}gram_fraction", f"top_{n}gram", f"max_top_{n}gram_fraction", "max") for n in NGRAM_SIZES),
    Rule("low_alpha_words", "alpha_words", "min_alpha_words", "min"),
    Rule("no_stop_words", "stop_words", "min_stop_words", "min"),
)


@register
class QualityFilter(SampleFilter):
    """Drop low-quality text by Gopher-style heuristics (length, symbols, repetition, stop words)."""

    name = "quality"
    version = "2"  # 2: presets (auto by default), bounds from the preset unless given
    Params = QualityParams
    columns = ("text", "source")

    def prepare(self, store: StoreCore) -> None:
        """For `auto`: each source's preset, from how its records were ingested (travels to the workers)."""
        params: QualityParams = self.params  # type: ignore[assignment]
        if params.preset == "auto":
            sources = {str(r["source"]): r["preset"] for r in store.query(PRESET_SQL).to_pylist()}
            self.params = params.model_copy(update={"sources": sources})

    def note(self) -> str:
        """Which preset judged which sources (the run's summary says it)."""
        params: QualityParams = self.params  # type: ignore[assignment]
        if params.preset != "auto":
            return f"preset {params.preset}"
        named = {}
        for source, preset in sorted(params.sources.items()):
            if preset != "web":
                named.setdefault(preset, []).append(source)
        picked = "; ".join(f"{p} for {', '.join(s)}" for p, s in sorted(named.items()))
        return f"preset auto: {picked}; web for the rest" if picked else "preset auto: web for every source"

    def decide(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import polars as pl  # ~0.4 s to import: only when this filter runs, not on every command
        params: QualityParams = self.params  # type: ignore[assignment]
        sources = batch.column("source").to_pylist() if "source" in batch.schema.names else [None] * batch.num_rows
        presets = pl.Series("preset", [params.preset_of(s) for s in sources], dtype=pl.String)
        texts = pl.Series("text", batch.column("text"), dtype=pl.String)
        parts = []
        for preset in presets.unique().sort().to_list():  # each preset judges its rows with its bounds
            rows = (presets == preset).arg_true()
            bounds = params.bounds(preset)
            judged = judge(metrics(texts.gather(rows), int(bounds["stop_words_min_words"])), bounds)
            parts.append(judged.with_columns(_row=rows))
        if not parts:
            return decisions(batch.column("sample_id"), [])
        verdict = pl.concat(parts).sort("_row")
        return decisions(
            batch.column("sample_id"),
            verdict["decision"].to_list(),
            score=verdict["score"].to_list(),
            reason=verdict["reason"].to_list(),
        )


# Per source, the preset of most of its samples, by how each was ingested (see the module doc).
PRESET_SQL = """
SELECT source, preset FROM (
    SELECT s.source, CASE
        WHEN b.options->>'template' IS NOT NULL THEN 'instruction'
        WHEN s.text LIKE '%[/INST]%' THEN 'instruction'
        WHEN json_type(s.record, '$."' || replace(coalesce(b.options->>'text_field', 'text'), '"', '\\"') || '"')
            = 'VARCHAR' THEN 'web'
        WHEN json_type(s.record, '$.messages') = 'ARRAY' OR json_type(s.record, '$.conversations') = 'ARRAY'
            THEN 'chat'
        WHEN json_type(s.record, '$.instruction') = 'VARCHAR' THEN 'instruction'
        ELSE 'web' END AS preset, count(*) AS n
    FROM samples s LEFT JOIN batches b USING (batch_id) GROUP BY ALL
)
QUALIFY row_number() OVER (PARTITION BY source ORDER BY n DESC, preset) = 1
"""


def metrics(texts: pl.Series, stop_words_min_words: int = 0) -> pl.DataFrame:
    """One row per text, one column per rule metric; null where a metric does not apply (no words, no lines)."""
    import polars as pl
    text = pl.col("text").fill_null("")
    frame = pl.DataFrame({"text": texts}).with_columns(
        tokens=text.str.extract_all(r"\S+"),
        lines=_non_empty(text.str.split("\n")),
        # polars splits on literals only: mark blank-line breaks first, then split on the mark.
        paragraphs=_non_empty(text.str.replace_all(r"\n\s*\n", "\x00").str.split("\x00")),
    )
    words = pl.col("tokens").list.len()
    per_word = pl.when(words > 0)
    return frame.select(
        words.alias("words"),
        _mean(pl.col("tokens").list.eval(_word_length())).alias("mean_word_length"),
        per_word.then(pl.max_horizontal(text.str.count_matches("#", literal=True), text.str.count_matches(_ELLIPSIS)))
        .truediv(words)
        .alias("symbol_ratio"),
        _mean(pl.col("lines").list.eval(pl.element().str.contains(f"({_ELLIPSIS})$"))).alias("ellipsis_lines"),
        _duplicate_fraction("lines").alias("duplicate_lines"),
        _duplicate_fraction("paragraphs").alias("duplicate_paragraphs"),
        _mean(pl.col("tokens").list.eval(pl.element().str.contains(r"\p{Alphabetic}"))).alias("alpha_words"),
        pl.when(words >= stop_words_min_words).then(_stop_word_count()).alias("stop_words"),
    ).hstack(_top_ngram_fractions(frame["tokens"]))


def _mean(values: pl.Expr) -> pl.Expr:
    import polars as pl
    # Not list.mean(): its float summation varies with the batch layout in the last bit; integer sums are exact,
    # so a sample scores the same whatever batch it is in.
    return pl.when(values.list.len() > 0).then(values.list.sum() / values.list.len())


def _non_empty(parts: pl.Expr) -> pl.Expr:
    import polars as pl
    return parts.list.eval(pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != ""))


def _word_length() -> pl.Expr:
    import polars as pl
    # Surrounding punctuation is not part of a word's length ("wall." has 4 letters); pure symbols are not words.
    length = pl.element().str.strip_chars(_PUNCT).str.len_chars()
    return length.filter(length > 0)


def _duplicate_fraction(column: str) -> pl.Expr:
    import polars as pl
    # The share of lines (paragraphs) that repeat an earlier one.
    parts = pl.col(column)
    return pl.when(parts.list.len() > 0).then(1 - parts.list.n_unique() / parts.list.len())


def _stop_word_count() -> pl.Expr:
    import polars as pl
    # Gopher counts occurrences, not distinct stop words; case and surrounding punctuation are ignored.
    normal = pl.element().str.to_lowercase().str.strip_chars(_PUNCT)
    return pl.col("tokens").list.eval(normal.is_in(STOP_WORDS)).list.sum()


def _top_ngram_fractions(tokens: pl.Series) -> pl.DataFrame:
    """Per text and n: characters of the most frequent repeated word n-gram times its count / all word characters.

    Characters are those of the normalised words, without spaces, as in RedPajama's Gopher signals.

    Overlapping occurrences (`a a a` holds `a a` twice) each count, so the value is capped at 1.
    """
    import polars as pl
    # Words are compared case-insensitively without surrounding punctuation ("Indeed," repeats "indeed").
    normal = pl.col("token").str.to_lowercase().str.strip_chars(_PUNCT)
    long = pl.DataFrame({"token": tokens}).with_row_index("row").explode("token").select("row", normal)
    long = long.filter(pl.col("token") != "").with_columns(chars=pl.col("token").str.len_chars())
    totals = pl.DataFrame({"row": pl.arange(0, len(tokens), eager=True, dtype=pl.UInt32)}).join(
        long.group_by("row").agg(pl.col("chars").sum().alias("total")), on="row", how="left", maintain_order="left"
    )
    for n in NGRAM_SIZES:
        totals = totals.join(_top_ngram_chars(long, n), on="row", how="left", maintain_order="left")
    covered = [pl.col(f"top_{n}gram").fill_null(0) for n in NGRAM_SIZES]
    return totals.select(
        pl.when(pl.col("total") > 0).then(pl.min_horizontal(c / pl.col("total"), 1.0)).alias(f"top_{n}gram")
        for n, c in zip(NGRAM_SIZES, covered, strict=True)
    )


def _top_ngram_chars(long: pl.DataFrame, n: int) -> pl.DataFrame:
    import polars as pl
    # Rows are contiguous, so a plain shift is a window shift once n-grams crossing into the next row are nulled.
    same_row = pl.col("row").shift(-(n - 1)) == pl.col("row")
    gram = pl.when(same_row).then(pl.concat_str([pl.col("token").shift(-k) for k in range(n)], separator=" "))
    chars = pl.sum_horizontal([pl.col("chars").shift(-k) for k in range(n)])
    counts = (
        long.select("row", gram.alias("gram"), chars.alias("chars"))
        .drop_nulls("gram")
        .group_by("row", "gram")
        .agg(pl.len().alias("count"), pl.first("chars"))
        .filter(pl.col("count") >= 2)
    )
    covered = pl.col("count") * pl.col("chars")
    # The most frequent n-gram; among equally frequent ones, the one covering most characters.
    return counts.group_by("row").agg(
        covered.filter(pl.col("count") == pl.col("count").max()).max().alias(f"top_{n}gram")
    )


def judge(metrics: pl.DataFrame, params: QualityParams | dict[str, float]) -> pl.DataFrame:
    """Columns decision, score, reason, one row per metrics row (see the module doc for the score)."""
    import polars as pl

    bounds = params if isinstance(params, dict) else params.bounds(params.preset_of(None))
    margins = pl.concat([_rule_margins(metrics, i, rule, bounds) for i, rule in enumerate(RULES)]).drop_nulls("value")
    worst = (
        margins.sort("row", "rule")
        .group_by("row", maintain_order=True)
        .agg(
            pl.col("name").filter(pl.col("margin") > 0).str.join(",").alias("failed"),
            pl.col("value").get(pl.col("margin").arg_max()).alias("worst_value"),
            pl.col("margin").max().alias("worst_margin"),
        )
    )
    rows = pl.DataFrame({"row": pl.arange(0, metrics.height, eager=True, dtype=pl.UInt32)})
    failed = pl.col("failed").fill_null("") != ""
    return rows.join(worst, on="row", how="left", maintain_order="left").select(
        pl.when(failed).then(pl.lit("drop")).otherwise(pl.lit("keep")).alias("decision"),
        pl.when(failed).then(pl.col("worst_value")).otherwise(-pl.col("worst_margin")).alias("score"),
        pl.when(failed).then(pl.lit("low_quality:") + pl.col("failed")).alias("reason"),
    )


def _rule_margins(metrics: pl.DataFrame, index: int, rule: Rule, bounds: dict[str, Any]) -> pl.DataFrame:
    import polars as pl

    bound = float(bounds[rule.bound])
    # Relative to the bound so rules of different units compare; a zero bound falls back to absolute.
    # A multiplication, not a division: dividing by the scalar gave last-bit differences between a sample
    # judged alone and in a long batch (polars 2.1); a sample's score must not depend on its batch.
    inverse = 1.0 / bound if bound > 0 else 1.0
    value = pl.col(rule.metric).cast(pl.Float64)
    excess = value - bound if rule.kind == "max" else bound - value
    return metrics.with_row_index("row").select(
        "row",
        pl.lit(index, pl.Int32).alias("rule"),
        pl.lit(rule.name).alias("name"),
        value.alias("value"),
        (excess * inverse).alias("margin"),
    )
