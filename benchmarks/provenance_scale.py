"""Provenance queries on a large multi-generation store: do they follow the family, not the store?

A seeded chain of `--samples` samples (default 10,000,000): a quarter real (in 40 sources), then five synthetic
generations of equal size, each sample with 1 or 2 parents in the generation before, named by their external ids
(so ingest resolves them). Generations 0-4 are ingested through the Python API; generation 5 through the CLI in a
child process with the default configuration (its memory limit included), timed and its peak RSS measured,
against DuckDB copying the same file. Then, each best of `--rounds`, against a baseline measured in this run:

1. `store.ancestors()` of a generation-5 sample, against the recursive query lineage ran before (unnesting the
   parents of every sample at each step: DuckDB over the store's sample segments), which must give the same rows;
2. `store.descendants()` of a real sample, the same way;
3. `lineage show ID` (a child process), against both baseline queries above;
4. the targets of a takedown of one real source (`TakedownFilter.targets`: the source's samples and every
   descendant), then `lineage takedown --source S` (a child process: finding them, deciding and committing one
   drop each), against DuckDB finding the same targets with the old recursive query;
5. lineage-aware contamination: the descendants of 1,000 protected real samples (`contamination.descendants`, what
   the filter and every build's check run), against the old recursive query.

The machine may be loaded by other work: wall times are shown with the CPU seconds they took.

    .venv/bin/python benchmarks/provenance_scale.py [--samples N] [--workdir DIR] [--keep] [--seed S]

With `--keep` the store stays in DIR, and a later run with the same DIR and size reuses it (queries only).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GENERATIONS = 5
REAL_SOURCES = 40
TARGET_SECONDS = 1.0  # ancestors and descendants

# Text of a sample: a few words drawn from a small vocabulary by hashes of its id, like a short instruction.
WORDS = [
    "model", "data", "river", "light", "paper", "stone", "garden", "engine", "market", "signal", "winter", "theory",
    "music", "window", "bridge", "letter", "forest", "number", "island", "mirror",
]


def text_sql(prefix: str, seed: int) -> str:
    picks = " || ' ' || ".join(
        f"{list(WORDS)!r}[1 + (hash(i, {seed}, {k}) % {len(WORDS)})::BIGINT]".replace('"', "'") for k in range(8)
    )
    return f"'{prefix} ' || i || ': ' || {picks}"


def make_inputs(folder: Path, samples: int, seed: int) -> list[Path]:
    """One Parquet input per generation: `id`, `text`, `parent_ids` (external ids in the generation before)."""
    import duckdb

    real = samples // 4
    per_gen = (samples - real) // GENERATIONS
    sizes = [real] + [per_gen] * GENERATIONS
    con = duckdb.connect(":memory:")
    con.execute("SET preserve_insertion_order = false")
    paths = []
    for gen, size in enumerate(sizes):
        path = folder / f"gen{gen}.parquet"
        paths.append(path)
        if path.exists():
            continue
        if gen == 0:
            select = (f"SELECT 'r-' || i AS id, {text_sql('Real note', seed)} AS text, "
                      f"'web-' || (i % {REAL_SOURCES}) AS source FROM range({size}) t(i)")
        else:
            prev, prefix = sizes[gen - 1], "r-" if gen == 1 else f"g{gen - 1}-"
            first = f"'{prefix}' || (hash(i, {seed}, {gen}, 1) % {prev})"
            second = f"'{prefix}' || (hash(i, {seed}, {gen}, 2) % {prev})"
            select = (f"SELECT 'g{gen}-' || i AS id, {text_sql(f'Paraphrase g{gen}', seed)} AS text, "
                      f"CASE WHEN hash(i, {seed}, {gen}, 3) % 2 = 0 THEN [{first}] "
                      f"ELSE list_distinct([{first}, {second}]) END AS parent_ids FROM range({size}) t(i)")
        con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    return paths


def lineage_cli(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lineage", "--store", str(store), *args]


class Child:
    """A finished child process: wall and CPU seconds, peak RSS (GB), its output."""

    def __init__(self, cmd: list[str]) -> None:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate()
        self.seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = usage.ru_utime + usage.ru_stime - Child.cpu_before
        Child.cpu_before = usage.ru_utime + usage.ru_stime
        self.rss, self.stdout = usage.ru_maxrss / 1e6, out
        if proc.returncode != 0:
            sys.exit(f"`{' '.join(cmd[3:])}` failed ({proc.returncode}): {err.strip()}")

    cpu_before = 0.0


def build(root: Path, inputs: list[Path]) -> dict[str, float]:
    """Ingest generations 0-4 in this process, generation 5 through the CLI (default configuration)."""
    import duckdb

    import lineage

    # A store left by an interrupted run (--keep) resumes after its last committed generation.
    store = lineage.open(root) if (root / "lineage.duckdb").exists() else lineage.Store.init(root)
    done = store.sql("SELECT count(*) AS n FROM batches")["n"][0].as_py()
    for gen, path in list(enumerate(inputs[:-1]))[done:]:
        started = time.perf_counter()
        if gen == 0:
            store.ingest(str(path), origin="real", method="human")
        else:
            store.ingest(str(path), origin="synthetic", source=f"gen{gen}", method="paraphrase",
                         generator=f"model-{gen}")
        print(f"  ingested generation {gen}: {time.perf_counter() - started:.1f} s", flush=True)
    gen = len(inputs) - 1
    args = ["ingest", str(inputs[-1]), "--origin", "synthetic", "--source", f"gen{gen}", "--method", "paraphrase",
            "--generator", f"model-{gen}"]
    child = Child(lineage_cli(root, *args))
    con = duckdb.connect(":memory:")
    started, cpu = time.perf_counter(), time.process_time()
    con.execute(f"COPY (SELECT * FROM '{inputs[-1]}') TO '{root.parent / 'copy.parquet'}' (FORMAT parquet)")
    copy, copy_cpu = time.perf_counter() - started, time.process_time() - cpu
    con.close()
    (root.parent / "copy.parquet").unlink()
    return {"ingest": child.seconds, "ingest_cpu": child.cpu, "ingest_rss": child.rss, "copy": copy,
            "copy_cpu": copy_cpu}


# What lineage ran before edges were materialised: the parents of every sample unnested at each step.
OLD_WALK = """
WITH RECURSIVE edges AS (SELECT unnest(parent_ids) AS parent_id, sample_id AS child_id FROM read_parquet($files)),
walk(sample_id, depth) AS (
    SELECT {first}, 1 FROM edges WHERE {start} = $id
    UNION
    SELECT e.{first}, w.depth + 1 FROM edges e JOIN walk w ON e.{start} = w.sample_id WHERE w.depth < 10000
)
SELECT sample_id, min(depth) AS depth FROM walk GROUP BY sample_id ORDER BY depth, sample_id
"""
OLD_TARGETS = """
WITH RECURSIVE edges AS (SELECT unnest(parent_ids) AS parent_id, sample_id AS child_id FROM read_parquet($files)),
t(sample_id, root) AS (
    SELECT sample_id, sample_id FROM read_parquet($files) WHERE source = $source
    UNION
    SELECT e.child_id, t.root FROM edges e JOIN t ON e.parent_id = t.sample_id
)
SELECT count(DISTINCT sample_id) FROM t
"""


def old_walk(files: list[str], sample_id: str, which: str) -> list[tuple[str, int]]:
    import duckdb

    first, start = ("parent_id", "child_id") if which == "ancestors" else ("child_id", "parent_id")
    con = duckdb.connect(":memory:")
    try:
        sql = OLD_WALK.format(first=first, start=start)
        return [(r[0], r[1]) for r in con.execute(sql, {"files": files, "id": sample_id}).fetchall()]
    finally:
        con.close()


def old_targets(files: list[str], source: str) -> int:
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        return con.execute(OLD_TARGETS, {"files": files, "source": source}).fetchall()[0][0]
    finally:
        con.close()


OLD_LINEAGE = """
WITH RECURSIVE edges AS (SELECT unnest(parent_ids) AS parent_id, sample_id AS child_id FROM read_parquet($files)),
walk(sample_id, root) AS (
    SELECT sample_id, sample_id FROM read_parquet($files) WHERE list_contains($seeds, sample_id)
    UNION
    SELECT e.child_id, w.root FROM edges e JOIN walk w ON e.parent_id = w.sample_id
)
SELECT sample_id, min(root) AS root FROM walk WHERE NOT list_contains($seeds, sample_id) GROUP BY 1
"""


def old_lineage(files: list[str], seeds: list[str]) -> dict[str, str]:
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        return dict(con.execute(OLD_LINEAGE, {"files": files, "seeds": seeds}).fetchall())
    finally:
        con.close()


def contamination_lineage(store: Any, seeds: list[str]) -> dict[str, str]:
    from lineage.core.edges import Graph
    from lineage.filters.contamination import descendants

    with store.reader() as con:
        return descendants(Graph(store, con), {s: s for s in seeds})


def takedown_targets(store: Any, source: str) -> Any:
    from lineage.filters.base import parse_params
    from lineage.filters.takedown import TakedownFilter

    flt = TakedownFilter(parse_params(TakedownFilter, {"source": source, "reason": "benchmark"}))
    return flt.targets(store)


class Timing:
    """Best of some rounds: wall and CPU seconds (CPU of every thread of this process)."""

    def __init__(self, rounds: int, fn: Callable[[], Any]) -> None:
        self.seconds, self.cpu, self.result = float("inf"), float("inf"), None
        for _ in range(rounds):
            started, cpu = time.perf_counter(), time.process_time()
            self.result = fn()
            self.seconds = min(self.seconds, time.perf_counter() - started)
            self.cpu = min(self.cpu, time.process_time() - cpu)


def pick(store: Any) -> tuple[str, str]:
    """A generation-5 sample with two parents, and a real sample with at least three children (the first of each,
    by id)."""
    deep = store.sql("SELECT min(sample_id) AS s FROM samples WHERE generation = 5 AND len(parent_ids) = 2")
    real = store.sql("SELECT min(p) AS s FROM (SELECT p FROM (SELECT unnest(parent_ids) AS p FROM samples "
                     "WHERE generation = 1) GROUP BY p HAVING count(*) >= 3)")
    return deep["s"][0].as_py(), real["s"][0].as_py()


def row(name: str, ours: tuple[float, float], base: tuple[float, float], note: str = "") -> None:
    """(wall, CPU) seconds of lineage and of the baseline, and the ratio of the walls."""
    print(f"{name:<34} {ours[0]:8.2f} s ({ours[1]:7.2f}) {base[0]:8.2f} s ({base[1]:7.2f}) "
          f"{base[0] / max(ours[0], 1e-9):7.1f}x  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the store and inputs in --workdir for reuse")
    args = parser.parse_args()

    import lineage

    work = args.workdir or Path(tempfile.mkdtemp(prefix="provenance-"))
    work.mkdir(parents=True, exist_ok=True)
    root = work / f"store-{args.samples}-{args.seed}"
    try:
        started = time.perf_counter()
        inputs = make_inputs(work, args.samples, args.seed)
        print(f"inputs: {args.samples:,} samples in {len(inputs)} generations ({time.perf_counter() - started:.1f} s)")
        built = None
        if not (root / "lineage.duckdb").exists() or lineage.open(root).version < len(inputs):
            built = build(root, inputs)
        store = lineage.open(root)
        paths = store.sql("SELECT path FROM segments WHERE kind = 'samples'")["path"].to_pylist()
        files = [str(root / p) for p in paths]
        deep, real = pick(store)
        total = store.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py()
        print(f"store: {total:,} samples, version {store.version}; "
              f"generation-5 sample {deep}, real sample {real}")
        print(f"\n{'operation (wall s, CPU s)':<34} {'lineage':>20} {'baseline':>20} {'ratio':>8}")
        if built:
            row("ingest generation 5 (CLI)", (built["ingest"], built["ingest_cpu"]), (built["copy"], built["copy_cpu"]),
                f"peak RSS {built['ingest_rss']:.2f} GB, default memory limit; baseline: DuckDB copy of the file")
        ok, old = True, {}
        for which, sample_id in (("ancestors", deep), ("descendants", real)):
            ours = Timing(args.rounds, lambda w=which, s=sample_id: getattr(store, w)(s))
            old[which] = Timing(1, lambda w=which, s=sample_id: old_walk(files, s, w))
            found = ours.result
            same = list(zip(found["sample_id"].to_pylist(), found["depth"].to_pylist(), strict=True)) == \
                old[which].result
            ok = ok and same and ours.seconds < TARGET_SECONDS
            row(f"{which}() ({found.num_rows} rows)", (ours.seconds, ours.cpu), (old[which].seconds, old[which].cpu),
                f"target < {TARGET_SECONDS:g} s; {'same rows' if same else 'ROWS DIFFER'} as the old recursive query")
        show = Child(lineage_cli(root, "show", deep))
        row("lineage show ID", (show.seconds, show.cpu),
            (old["ancestors"].seconds + old["descendants"].seconds, old["ancestors"].cpu + old["descendants"].cpu),
            "baseline: the two old queries")
        seeds = store.sql("SELECT sample_id FROM samples WHERE generation = 0 ORDER BY sample_id LIMIT 1000")
        seeds = seeds["sample_id"].to_pylist()
        ours = Timing(args.rounds, lambda: contamination_lineage(store, seeds))
        base = Timing(1, lambda: old_lineage(files, seeds))
        same = ours.result == base.result
        ok = ok and same
        row(f"contamination lineage ({len(base.result):,})", (ours.seconds, ours.cpu), (base.seconds, base.cpu),
            f"descendants of 1,000 protected samples; {'same' if same else 'DIFFERENT'} roots as the old query")
        source = f"web-{(store.version + 10) % REAL_SOURCES}"  # another source per run of a kept store
        base = Timing(1, lambda: old_targets(files, source))
        found = Timing(args.rounds, lambda: takedown_targets(store, source))
        same = len(found.result) == base.result
        ok = ok and same
        row(f"takedown targets ({len(found.result):,})", (found.seconds, found.cpu), (base.seconds, base.cpu),
            f"the run's selection (`TakedownFilter.targets`); {'same' if same else 'DIFFERENT'} count as DuckDB")
        takedown = Child(lineage_cli(root, "takedown", "--source", source, "--reason", "benchmark"))
        row(f"lineage takedown ({base.result:,} targets)", (takedown.seconds, takedown.cpu), (base.seconds, base.cpu),
            f"peak RSS {takedown.rss:.2f} GB; baseline: DuckDB finding the targets")
        print(f"  {takedown.stdout.strip().splitlines()[-1] if takedown.stdout.strip() else ''}")
        print("\nall targets met" if ok else "\nTARGET MISSED")
    finally:
        if not args.keep:
            shutil.rmtree(work if args.workdir is None else root, ignore_errors=True)


if __name__ == "__main__":
    main()
