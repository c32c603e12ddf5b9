"""The columns of `samples` that lineage groups by: one list, kept import-free so the CLI can offer them in
--help instantly. `stats` and `diversity` group by any of them, build quotas by any but the batch, and a build's
composition and attributions by the provenance ones."""

GROUP_DIMENSIONS = ("origin", "source", "method", "generator", "generation", "license", "language", "batch_id")
QUOTA_DIMENSIONS = tuple(d for d in GROUP_DIMENSIONS if d != "batch_id")  # a batch is not a kind of data
PROVENANCE_DIMENSIONS = ("origin", "source", "method", "generation")
