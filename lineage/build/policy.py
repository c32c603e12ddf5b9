"""Build policies that respond to symptoms: the article's "dynamic ratios" and generation caps.

A spec's `policy: {after: MODEL, baseline: MODEL, on_symptoms: {real_min: 0.2, max_generation: -1}}`
runs `lineage check` on MODEL (against `baseline`, default its parent) before the build is planned.
The limits start from the stricter of this spec's and those of MODEL's own training build (a ratchet:
one good generation does not undo a response). When the check finds symptoms, the real floor rises
by `real_min` (at most 1) and the generation cap falls by `max_generation` (at least 0). The decision,
fired or not, with the failing symptoms, is recorded in the build row's `checks` under `policy`.
With `on_symptoms: {rollback: true}` a firing policy also draws the build from the store as it was when
the training build of the last model whose check passed was made (walking `after`'s parents): the
article's generational snapshots.

`lineage model rollback NAME --to MODEL` (`Store.rollback`) takes that decision by hand: it records a
`rollback` commit naming NAME, MODEL (the last ancestor of NAME whose check passes, when not given) and the
store version MODEL's training build was drawn from; from then on a build whose policy is `after: NAME`
draws from that version, whether or not the check fires, and records the rollback in its `policy` checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lineage.check import check_model
from lineage.errors import LineageError

if TYPE_CHECKING:
    from lineage.build.spec import BuildSpec
    from lineage.core.handle import StoreCore


def apply_policy(store: StoreCore, spec: BuildSpec) -> tuple[BuildSpec, dict[str, Any] | None]:
    """The spec with the policy's limits applied, and the decision (None when the spec has no policy)."""
    from lineage.build.spec import Pool, Share
    from lineage.models import require_model

    policy = spec.policy
    if policy is None:
        return spec, None
    info = require_model(store, policy.after)
    result = check_model(store, policy.after, baseline=policy.baseline)
    real, cap = _limits(store, info, spec)
    failing = [s.evidence for s in result.symptoms if s.crossed]
    if failing:
        real = min(1.0, round((real or 0.0) + policy.on_symptoms.real_min, 6))
        cap = None if cap is None else max(0, cap + policy.on_symptoms.max_generation)
    quotas = {**spec.quotas, "origin": {**spec.quotas.get("origin", {}), "real": Share(min=real)}}
    if real is None:
        quotas = spec.quotas
    pool = Pool(**{**spec.pool.model_dump(), "max_generation": cap})
    decision = {
        "after": policy.after, "against": result.against, "fired": bool(failing),
        "rule": "on_symptoms" if failing else "none: the check passed",
        "real_min": real, "max_generation": cap, "symptoms": failing,
    }
    if failing and policy.on_symptoms.rollback:
        decision.update(_snapshot(store, policy.after, policy.baseline))
    recorded = recorded_rollback(store, policy.after)
    if recorded is not None:  # a rollback taken by hand holds whatever the check says
        decision.update({"rule": f"{decision['rule']}; rollback recorded at version {recorded['version']}",
                         "rolled_back_to": recorded["to"], "as_of": recorded["as_of"]})
    return spec.model_copy(update={"quotas": quotas, "pool": pool}), decision


def _snapshot(store: StoreCore, after: str, baseline: str | None) -> dict[str, Any]:
    """The last model up `after`'s parent chain whose check passes, and its training build's store version."""
    from lineage.models import require_model

    name: str | None = require_model(store, after)["parent"]
    while name is not None:
        info = require_model(store, name)
        if check_model(store, name, baseline=baseline if baseline != name else None).passed:
            version = store.query("SELECT store_version FROM builds WHERE name = ? AND build_version = ?",
                                  params=[info["build_name"], info["build_version"]])["store_version"][0].as_py()
            return {"rule": "on_symptoms, rollback", "rolled_back_to": name, "as_of": version}
        name = info["parent"]
    raise LineageError(f"rollback: no model before `{after}` passes its check; nothing to roll back to")


def _limits(store: StoreCore, info: dict[str, Any], spec: BuildSpec) -> tuple[float | None, int | None]:
    """The stricter of this spec's and the model's training build's real floor and generation cap."""
    row = store.query("SELECT spec, composition FROM builds WHERE name = ? AND build_version = ?",
                    params=[info["build_name"], info["build_version"]]).to_pylist()
    if not row:
        raise LineageError(f"model `{info['name']}`: its training build is missing")
    before = json.loads(row[0]["spec"])
    deepest = max((int(g) for g in json.loads(row[0]["composition"]).get("generation", {})), default=0)
    mins = [_real_min(before.get("quotas", {})), _real_min(spec.model_dump()["quotas"])]
    caps = [c for c in (before.get("pool", {}).get("max_generation"), spec.pool.max_generation) if c is not None]
    # A model trained without a cap gets one at the depth its build reached, so a step down means something.
    cap = min(caps) if caps else deepest
    real = max((m for m in mins if m is not None), default=None)
    return real, cap


def _real_min(quotas: dict[str, Any]) -> float | None:
    share = quotas.get("origin", {}).get("real")
    return None if share is None else share.get("min")


ROLLBACK_SQL = """
SELECT version, summary FROM commits WHERE kind = 'rollback' AND ref_id = ? ORDER BY version DESC LIMIT 1
"""


@dataclass(frozen=True)
class Rollback:
    """A recorded rollback: builds after `model` draw from the store as of `as_of`, `to`'s training build."""

    model: str
    to: str
    build: str  # `to`'s training build, NAME@vN
    as_of: int  # the store version that build was drawn from
    version: int  # the commit that recorded the rollback
    evidence: list[str]  # `to`'s check, `kind: evidence` per symptom

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollback(store: StoreCore, model: str, *, to: str | None = None) -> Rollback:
    """Record that builds after `model` start from the snapshot of `to` (default: the last model up `model`'s
    parents whose check passes). `to` must be an ancestor of `model` whose check passes."""
    from lineage.models import require_model

    require_model(store, model)
    chain = _ancestors(store, model)
    if to is None:
        found = _snapshot(store, model, None)
        to = found["rolled_back_to"]
    elif to not in chain:
        raise LineageError(f"cannot roll `{model}` back to `{to}`: it is not an ancestor of `{model}` "
                           f"(its parents: {', '.join(chain) or 'none'})")
    result = check_model(store, to)
    if not result.passed:
        failing = sum(s.crossed for s in result.symptoms)
        raise LineageError(f"cannot roll `{model}` back to `{to}`: its own check fails ({failing} symptoms; "
                           f"`lineage check {to}`); roll back further")
    info = require_model(store, to)
    build = f"{info['build_name']}@v{info['build_version']}"
    as_of = store.query("SELECT store_version FROM builds WHERE name = ? AND build_version = ?",
                      params=[info["build_name"], info["build_version"]])["store_version"][0].as_py()
    _check_readable(store, model, to, build, as_of)
    summary = {"model": model, "to": to, "build": build, "as_of": as_of}
    with store.transaction("rollback", model, summary, allow_empty=True) as txn:  # the commit is the record
        version = txn.version
    return Rollback(model, to, build, as_of, version, [f"{s.kind}: {s.evidence}" for s in result.symptoms])


def _check_readable(store: StoreCore, model: str, to: str, build: str, as_of: int) -> None:
    """The version a rollback draws from is still readable. A rollback to one `gc` had removed was recorded, and
    every build after it failed ("--as-of N: `lineage gc` removed the segments ...")."""
    from lineage.core import catalog

    with store.catalog() as cat:
        oldest = catalog.oldest_version(cat)
    if as_of < oldest:
        raise LineageError(
            f"cannot roll `{model}` back to `{to}`: its training build {build} drew from store version {as_of}, "
            f"and `lineage gc` removed the segments of versions before {oldest}; roll back to a later model, or "
            "rebuild from data still stored"
        )


def recorded_rollback(store: StoreCore, model: str) -> dict[str, Any] | None:
    """The latest rollback recorded for builds after `model`: {to, build, as_of, version}, or None."""
    rows = store.query(ROLLBACK_SQL, params=[model]).to_pylist()
    if not rows:
        return None
    return {**json.loads(rows[0]["summary"]), "version": rows[0]["version"]}


def _ancestors(store: StoreCore, model: str) -> list[str]:
    from lineage.models import require_model

    out, name = [], require_model(store, model)["parent"]
    while name is not None and name not in out:
        out.append(name)
        name = require_model(store, name)["parent"]
    return out
