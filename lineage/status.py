"""`lineage status`: what is out of date, DVC-style: filters that have not seen samples, builds the store moved past."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage.filters.incremental import FilterState, filter_states

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

# Per build (its latest version): what was added to the store after the version it was drawn from.
BUILDS_SQL = """
WITH latest AS (
    SELECT name, build_version, store_version, size FROM builds
    QUALIFY row_number() OVER (PARTITION BY name ORDER BY build_version DESC) = 1
)
SELECT l.name, l.build_version, l.store_version, l.size,
    (SELECT count(*) FROM samples s WHERE s.version > l.store_version) AS new_samples,
    (SELECT count(*) FROM runs r WHERE r.version > l.store_version) AS new_runs,
    (SELECT count(*) FROM commits c
        WHERE c.version > l.store_version AND c.kind NOT IN ('build', 'diversity', 'compact')) AS changes
FROM latest l ORDER BY l.name
"""


@dataclass(frozen=True)
class StoreStatus:
    version: int
    filters: list[FilterState]
    builds: list[dict[str, Any]]  # name, build_version, store_version, size, new_samples, new_runs, changed

    @property
    def up_to_date(self) -> bool:
        return not any(f.unseen for f in self.filters) and not any(b["changed"] for b in self.builds)

    def lines(self) -> list[str]:
        """The status for people: one line per filter and per build."""
        out = [f"store version {self.version}"]
        out += [f"filter {f.describe()}" for f in self.filters] or ["no filter has run"]
        for b in self.builds:
            head = f"build {b['name']}@v{b['build_version']} (store version {b['store_version']})"
            if not b["changed"]:
                out.append(f"{head}: up to date")
            else:
                out.append(
                    f"{head}: the store changed since: {b['new_samples']:,} samples ingested, "
                    f"{b['new_runs']:,} filter runs"
                )
        return out


def status(store: StoreCore) -> StoreStatus:
    states = filter_states(store)
    builds = [{**b, "changed": b.pop("changes") > 0} for b in store.query(BUILDS_SQL).to_pylist()]
    return StoreStatus(store.version, states, builds)
