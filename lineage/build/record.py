"""A committed build version as the catalog records it: its row, its members and what they hold."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Self

import pyarrow as pa

from lineage.errors import LineageError, NotFound

if TYPE_CHECKING:
    import polars as pl

    from lineage.core.handle import StoreCore
    from lineage.licenses import LicenseShare


def list_builds(store: StoreCore) -> pa.Table:
    return store.query(
        "SELECT name, build_version, size, pool_size, seed, store_version, spec_hash, created_at FROM builds "
        "ORDER BY name, build_version"
    )


class BuildRecord:
    """A committed build version: its catalog row and its members. `lineage.build.Build` adds the exports; what
    the exports and other capabilities read takes this."""

    def __init__(self, store: StoreCore, name: str, version: int | None = None) -> None:
        rows = store.query(
            "SELECT * FROM builds WHERE name = ? AND (? IS NULL OR build_version = ?) "
            "ORDER BY build_version DESC LIMIT 1",
            params=[name, version, version],
        ).to_pylist()
        if not rows:
            ref = name + (f"@v{version}" if version is not None else "")
            raise NotFound("build", ref, f"no build `{ref}`; `lineage builds` lists them")
        self.store, self.info = store, rows[0]
        self.name, self.version = name, self.info["build_version"]
        self.refreshed: list[str] = []  # summaries of the filter runs `build(refresh=True)` made first

    @classmethod
    def parse(cls, store: StoreCore, ref: str) -> Self:
        """NAME or NAME@vN."""
        name, _, version = ref.partition("@")
        if version and not (version.startswith("v") and version[1:].isdigit()):
            raise LineageError(f"build reference `{ref}` must look like NAME or NAME@vN")
        return cls(store, name, int(version[1:]) if version else None)

    def __repr__(self) -> str:
        return f"Build({self.name!r}@v{self.version}, {self.info['size']:,} samples)"

    def contamination(self) -> dict[str, Any]:
        """The members' contamination check against the protected sets as they are now.

        The check stored at build time while the protected sets are unchanged (same fingerprint); a new
        check of the members otherwise (`rechecked`), with the stored one as `as_built`.
        """
        from lineage.build.checks import (
            CHECK_VERSION,
            contamination_check,
            filter_drops,
            fingerprint,
            with_filter_drops,
        )

        stored = json.loads(self.info["checks"])
        names = json.loads(self.info["spec"]).get("protected")
        current = fingerprint(self.store, names)
        members = self.member_ids()["sample_id"]
        drops = filter_drops(self.store, members)  # what the filter drops of the members now: leaks too
        unverified = self._unverified(stored)
        if stored.get("check_version") == CHECK_VERSION and stored.get("protected_fingerprint") == current:
            # A committed build's own check found no leak (else it was not committed): every drop is one more.
            return with_filter_drops({**stored, "rechecked": False, "unverified": unverified}, drops, set())
        fresh = contamination_check(self.store, names, members, drops=drops)
        # What the build recorded beside its own check (not contamination) stays true after a re-check.
        notes = {k: stored[k] for k in ("stale_filters", "policy", "size") if k in stored}
        return {**fresh, **notes, "rechecked": True, "as_built": stored, "unverified": unverified}

    def _unverified(self, stored: dict[str, Any]) -> str | None:
        """Why no leak found is not yet a verdict, or None. The build's own check follows descendants of protected
        samples; the `contamination` filter, of any sample that contains a protected item, and its drops count
        here (`filter_drops`). So the check waits on the filter while it has never run, when it had not seen
        samples of the pool (`--allow-stale`) and has not run since the build, or when protected sets changed after
        its last run."""
        from lineage.build.checks import UNVERIFIED_CHANGED, UNVERIFIED_NEVER, UNVERIFIED_STALE

        latest = self.store.query("SELECT max(version) AS v FROM runs WHERE filter = 'contamination'")["v"][0].as_py()
        unseen = int(stored.get("stale_filters", {}).get("contamination", 0))
        if unseen and (latest is None or latest < self.info["version"]):
            return UNVERIFIED_STALE.format(n=unseen)
        changed = self.store.query(
            "SELECT max(greatest(s.version, m.version)) AS v FROM sets s JOIN set_members m ON m.set_name = s.name "
            "WHERE s.protected"
        )["v"][0].as_py()
        if changed is not None and latest is None:  # protected samples, and no run has looked for them
            return UNVERIFIED_NEVER
        if latest is not None and changed is not None and changed > latest:
            return UNVERIFIED_CHANGED
        return None

    def taken_down(self) -> dict[str, int]:
        """Members a takedown drops now (made after the build): how many, by the takedown's reason."""
        with self.store.reader(views={"status"}) as con:
            con.register("_members", self.member_ids())
            rows = con.execute(
                "SELECT coalesce(reason, 'takedown'), count(*) FROM status SEMI JOIN _members USING (sample_id) "
                "WHERE filter = 'takedown' AND decision = 'drop' GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        return dict(rows)

    def member_ids(self) -> pa.Table:
        import pyarrow.parquet as pq

        # One file: ParquetFile, not read_table, which imports pyarrow.dataset (~0.3 CPU-s).
        with pq.ParquetFile(self.store.root / self.info["members_path"]) as members:
            return members.read()

    def members(self, *, columns: str = "*") -> pa.Table:
        """The members' sample rows (Arrow), in sample_id order."""
        with self.store.reader(views={"samples"}) as con:  # not every view: ~10 ms, not ~90
            con.register("_members", self.member_ids())
            return con.sql(
                f"SELECT {columns} FROM samples s SEMI JOIN _members m USING (sample_id) ORDER BY sample_id"
            ).to_arrow_table()

    def licenses(self) -> list[LicenseShare]:
        """The licence composition of the members: count and share per licence, `unknown` included."""
        from lineage.licenses import composition

        with self.store.reader(views={"samples"}) as con:  # not every view: ~10 ms, not ~90
            con.register("_members", self.member_ids())
            rows = con.execute(
                "SELECT s.license, count(*) FROM samples s SEMI JOIN _members m USING (sample_id) GROUP BY 1"
            ).fetchall()
        return composition(dict(rows))

    def to_polars(self) -> pl.DataFrame:
        import polars as pl

        return pl.from_arrow(self.members())  # type: ignore[return-value]
