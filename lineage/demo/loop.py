"""The closed loop behind `lineage demo`: train, generate, ingest, evaluate, generation after generation.

Three policies, each its own lineage of builds and models in one store:

* `replace`    each model trains only on the previous model's outputs (the first on real data);
* `accumulate` each model trains on the real data plus every output so far;
* `governed`   each model trains on a lineage build: real share >= 50%, max generation 2, near-dedup and
               quality drops honoured, and a policy: when `lineage check` finds symptoms in the last model
               (against the first), the next build raises the real floor and lowers the generation cap.

Everything goes through the public API (ingest, sets, filters, builds, models, evals, attribution), so the
demo doubles as an end-to-end test and as an example to copy for your own loop.
"""

from __future__ import annotations

import functools
import gzip
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from lineage.core.sqlutil import sql_string
from lineage.demo.lm import BigramLM, Vocabulary, tokenize
from lineage.errors import LineageError, flag
from lineage.store import Store

POLICIES = ("replace", "accumulate", "governed")
REAL_SOURCE, HELDOUT_SOURCE = "wordnet", "wordnet-heldout"


@dataclass(frozen=True)
class DemoConfig:
    generations: int = 5
    seed: int = 0
    train_size: int = 20_000  # real sentences to train on
    heldout_size: int = 2_000  # real sentences held out (a protected set)
    outputs: int = 20_000  # sentences each model generates
    rare_max_count: int = 2  # a "rare" word occurs at most this often in the real training data


@dataclass
class Row:
    policy: str
    generation: int
    model: str
    build_size: int
    real_share: float
    heldout_loss: float  # cross-entropy on the held-out real data, bits per token
    heldout_accuracy: float  # next-word top-1 accuracy on the held-out real data
    rare_survival: float  # share of the real data's rare words the model still writes
    distinct_2: float


@dataclass
class DemoResult:
    store: Store
    rows: list[Row] = field(default_factory=list)
    attribution: Any = None
    report: Path | None = None

    def series(self, policy: str, attr: str) -> list[float]:
        return [getattr(r, attr) for r in self.rows if r.policy == policy]


@functools.cache  # ~0.5 s to parse: once per process (a test run makes many demos); callers only read it
def load_corpus() -> tuple[dict[str, str], ...]:
    path = resources.files("lineage.demo") / "data" / "wordnet-sentences.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f)


def run_demo(
    directory: str | Path, config: DemoConfig = DemoConfig(), *, force: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> DemoResult:
    """Create a store in `directory` and run the loop for every policy."""
    store = _fresh_store(Path(directory), force)
    train, heldout = _ingest_real(store, config)
    vocab = Vocabulary(t for text in train for t in tokenize(text))
    rare = _rare_words(train, config.rare_max_count)
    result = DemoResult(store)
    rng = np.random.default_rng(config.seed)
    for policy in POLICIES:
        parent = None
        for generation in range(1, config.generations + 1):
            row = _generation(store, config, policy, generation, parent, vocab, heldout, rare, rng)
            result.rows.append(row)
            parent = row.model
            if progress:
                progress(policy, generation)
    result.attribution = store.attribute("heldout_loss", by="generation", benchmark="demo", seed=config.seed)
    result.report = store.report("models", output=Path(directory) / "report.html", metric="heldout_loss",
                                 benchmark="demo", by="generation")
    return result


def _fresh_store(directory: Path, force: bool) -> Store:
    if directory.exists() and any(directory.iterdir()):
        if not force:
            raise LineageError(f"`{directory}` is not empty; pass {flag('force')} to replace it, or choose another DIR")
        if not (directory / "lineage.duckdb").exists():
            raise LineageError(f"`{directory}` is not a lineage store; refusing to delete it")
        shutil.rmtree(directory)
    return Store.init(directory)


def _ingest_real(store: Store, config: DemoConfig) -> tuple[list[str], list[str]]:
    """Real data (generation 0) and a protected held-out slice of it, as two ingests."""
    corpus = load_corpus()
    order = np.random.default_rng(config.seed).permutation(len(corpus))
    need = config.train_size + config.heldout_size
    if need > len(corpus):
        raise LineageError(f"the demo corpus has {len(corpus):,} sentences; train + held-out asks for {need:,}")
    train = [corpus[i] for i in order[: config.train_size]]
    heldout = [corpus[i] for i in order[config.train_size : need]]
    store.ingest(train, origin="real", source=REAL_SOURCE, method="human", license="WordNet-3.0", language="en")
    store.ingest(heldout, origin="real", source=HELDOUT_SOURCE, method="human", license="WordNet-3.0",
                 language="en", set_name="heldout")
    store.query("SELECT 1")  # the held-out set exists from here on; protect it before any build
    _protect(store)
    # WordNet glosses share phrases ("offensive term for a person of ..."): some training sentences contain
    # held-out ones, and every build refuses a member that leaks a protected item. Decontaminate, as a team would.
    store.run_filter("contamination", where=f"source = {sql_string(REAL_SOURCE)}", engine="inline")
    return [r["text"] for r in train], [r["text"] for r in heldout]


def _protect(store: Store) -> None:
    ids = store.query("SELECT sample_id FROM set_members WHERE set_name = 'heldout'")["sample_id"].to_pylist()
    store.create_set("heldout-protected", ids=ids, protected=True, description="held-out real sentences")


def _rare_words(texts: list[str], max_count: int) -> set[str]:
    counts = Counter(t for text in texts for t in tokenize(text) if t.isalpha())
    return {w for w, c in counts.items() if c <= max_count}


def _spec(config: DemoConfig, policy: str, generation: int) -> dict[str, Any]:
    """Each build takes all its pool can give (`size: max`): the whole pool, or under the governed quotas as much
    synthetic data as the real floor allows."""
    name, seed = f"{policy}-g{generation}", config.seed + generation
    real = f"source = {sql_string(REAL_SOURCE)}"
    if policy == "governed":
        return _governed_spec(name, seed, generation)
    if policy == "replace" and generation > 1:
        pool = f"generator = 'replace-m{generation - 1}'"
    elif policy == "accumulate":
        pool = f"{real} OR generator LIKE 'accumulate-%'"
    else:
        pool = real
    return {"name": name, "size": "max", "seed": seed, "pool": {"where": pool}}


def _governed_spec(name: str, seed: int, generation: int) -> dict[str, Any]:
    """Real share >= 50%, generation <= 2, filtered outputs; from generation 2 on, a policy checks the last
    model against the first (trained on real data only) and, on any symptom, raises the real floor by 0.2
    and lowers the generation cap by 1 (`lineage.build.policy`): detect, then respond. Every real sample, and
    filtered synthetic ones up to the real floor the policy set (`size: max`)."""
    real = f"source = {sql_string(REAL_SOURCE)}"
    spec: dict[str, Any] = {"name": name, "size": "max", "seed": seed,
                            "pool": {"where": f"{real} OR generator LIKE 'governed-%'", "max_generation": 2},
                            "quotas": {"origin": {"real": {"min": 0.5}}}}
    if generation > 1:
        spec["policy"] = {"after": f"governed-m{generation - 1}", "baseline": "governed-m1"}
    return spec


def distinct_2(docs: list[list[str]]) -> float:
    """distinct-2 (Li et al. 2016) of the outputs: distinct word bigrams / bigrams, within each output (the value
    `lineage diversity` reports as distinct_2); 0 without any bigram."""
    bigrams = [pair for tokens in docs for pair in pairwise(tokens)]
    return len(set(bigrams)) / len(bigrams) if bigrams else 0.0


def _generation(
    store: Store, config: DemoConfig, policy: str, generation: int, parent: str | None, vocab: Vocabulary,
    heldout: list[str], rare: set[str], rng: np.random.Generator,
) -> Row:
    build = store.build(_spec(config, policy, generation))
    members = build.members(columns="text, origin")
    lm = BigramLM.train(vocab, members["text"].to_pylist())
    model = f"{policy}-m{generation}"
    store.register_model(model, trained_on=f"{build.name}@v{build.version}", parent=parent,
                         notes=f"bigram LM, policy {policy}")
    outputs = lm.sample(config.outputs, rng)
    store.ingest([{"text": t} for t in outputs if t.strip()], origin="synthetic", source=f"{policy}-outputs",
                 method="self-generated", generator=model, gen_params={"sampler": "ancestral", "temperature": 1.0})
    where = f"generator = {sql_string(model)}"
    # Every policy's outputs are decontaminated (a model can regenerate a held-out sentence): the policies
    # differ in what they train on, not in whether the evaluation leaks.
    store.run_filter("contamination", where=where, engine="inline")
    if policy == "governed":
        store.run_filter("near-dedup", where=where, engine="inline")
        store.run_filter("quality", where=where, engine="inline")
    row = _evaluate(store, policy, generation, model, build, members, lm, outputs, heldout, rare)
    return row


def _evaluate(
    store: Store, policy: str, generation: int, model: str, build: Any, members: Any, lm: BigramLM,
    outputs: list[str], heldout: list[str], rare: set[str],
) -> Row:
    tokens = [tokenize(t) for t in outputs]
    seen = {t for words in tokens for t in words}
    origins = members["origin"].to_pylist()
    row = Row(
        policy, generation, model, len(origins), origins.count("real") / max(len(origins), 1),
        lm.cross_entropy(heldout), lm.accuracy(heldout), len(rare & seen) / max(len(rare), 1),
        distinct_2(tokens),
    )
    store.record_eval(model, metrics={"heldout_loss": row.heldout_loss, "heldout_accuracy": row.heldout_accuracy},
                      benchmark="demo", eval_set="heldout-protected")
    store.record_eval(model, metrics={"rare_survival": row.rare_survival, "distinct_2": row.distinct_2},
                      benchmark="outputs")
    return row
