"""Build specs: YAML, JSON or TOML, validated by pydantic with errors that point into the spec."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lineage.core.readonly import predicate
from lineage.dimensions import QUOTA_DIMENSIONS
from lineage.errors import LineageError, SpecError
from lineage.names import check_name

DIMENSIONS = QUOTA_DIMENSIONS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Share(_Strict):
    """Bounds on the share of the build a value (or glob of values) takes."""

    min: float | None = Field(default=None, ge=0, le=1, description="Minimum share, 0..1.")
    max: float | None = Field(default=None, ge=0, le=1, description="Maximum share, 0..1.")
    target: float | None = Field(default=None, ge=0, le=1, description="Preferred share, 0..1.")
    hard: bool = Field(
        default=False,
        description="Make the target binding: a build that cannot take exactly the target fails before writing.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Share:
        if self.hard and self.target is None:
            raise ValueError("hard: true needs a target")
        lo, hi = self.min if self.min is not None else 0.0, self.max if self.max is not None else 1.0
        if lo > hi:
            raise ValueError(f"min {lo} is above max {hi}")
        if self.target is not None and not lo <= self.target <= hi:
            raise ValueError(f"target {self.target} is outside min..max ({lo}..{hi})")
        return self


class ExprQuota(Share):
    """A share bound on the samples matching any SQL expression over `samples`."""

    name: str
    sql: str

    _sql = field_validator("sql")(predicate)


class Pool(_Strict):
    where: str | None = Field(default=None, description="SQL predicate over `samples`.")
    exclude_dropped_by: list[str] | None = Field(
        default=None, description="Filters whose latest `drop` decisions exclude a sample; default: every filter run."
    )
    max_generation: int | None = Field(default=None, ge=0)
    licenses: list[str] | None = Field(
        default=None,
        description="Only samples under these licences (case-insensitive, e.g. cc-by-4.0, mit; `unknown` for "
        "samples without one); default: any.",
    )

    # Exactly one expression: spliced into `WHERE (where) AND <exclusions>`, it can only narrow the pool.
    _where = field_validator("where")(predicate)


class Floor(_Strict):
    """A diversity metric bound on the build (or on each group of `by`): `min` for metrics where more is
    more diverse (distinct_n, entropy, tail_coverage), `max` for the others (self_bleu, near_dup_rate, ...)."""

    metric: str
    min: float | None = None
    max: float | None = None
    by: str | None = Field(default=None, description="A dimension: the floor holds for every group of it.")
    min_group_size: int | None = Field(
        default=None, ge=1, description="Groups smaller than this are reported `not measurable` instead of judged."
    )

    @model_validator(mode="after")
    def _bound(self) -> Floor:
        from lineage.metrics import METRICS

        if self.metric not in METRICS:
            raise ValueError(f"unknown metric `{self.metric}`; choose from {', '.join(METRICS)}")
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of min or max")
        if self.by is not None and self.by not in DIMENSIONS:
            raise ValueError(f"unknown dimension `{self.by}`; use one of {', '.join(DIMENSIONS)}")
        return self


class OnSymptoms(_Strict):
    """How a policy moves the limits when the check finds symptoms."""

    real_min: float = Field(default=0.2, ge=0, le=1, description="Raise the real share floor by this much.")
    max_generation: int = Field(default=-1, le=0, description="Move the generation cap by this many (<= 0).")
    rollback: bool = Field(
        default=False, description="Also draw from the store as it was when the training build of the last "
        "model (walking `after`'s parents) whose check passed was made: a generational snapshot.",
    )


class Policy(_Strict):
    """Respond to the symptoms of model `after` (see `lineage check`) before building."""

    after: str = Field(description="The model this build trains the successor of; it is checked first.")
    baseline: str | None = Field(default=None, description="Check against this model; default: its parent.")
    on_symptoms: OnSymptoms = OnSymptoms()


MAX_SIZE = 10_000_000_000


class BuildSpec(_Strict):
    """A blended training set: size, seed, candidate pool, quotas, diversity floors, protected sets."""

    name: str
    size: Annotated[int, Field(gt=0, le=MAX_SIZE)] | Literal["max"] = Field(
        description='Samples in the build; "max": the most the pool and the quotas allow (resolved when the build '
        "is planned: the spec recorded with the build holds the number).",
    )
    seed: int = 0
    pool: Pool = Pool()
    quotas: dict[str, dict[str, Share]] = Field(default_factory=dict)
    expr: list[ExprQuota] = Field(default_factory=list, description="Quotas on SQL expressions.")
    floors: list[Floor] = Field(default_factory=list)
    protected: list[str] | None = Field(default=None, description="Protected sets to check; default: all.")
    description: str | None = None
    policy: Policy | None = Field(default=None, description="Limits that respond to a model's check.")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        # One line for a bad size, not pydantic's one per member of the union.
        if value == "max" or (type(value) is int and 0 < value <= MAX_SIZE):
            return value
        raise ValueError(f'must be a whole number from 1 to {MAX_SIZE:,}, or "max"; got {value!r}')

    @field_validator("protected")
    @classmethod
    def _protected(cls, value: list[str] | None) -> list[str] | None:
        if value == []:  # would protect nothing, silently: every held-out item could enter the build
            raise ValueError("names no set; leave it out to keep every protected set out of the build")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_name("build", value)
        except LineageError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("quotas")
    @classmethod
    def _dimensions(cls, value: dict[str, dict[str, Share]]) -> dict[str, dict[str, Share]]:
        for dim, shares in value.items():
            if dim not in DIMENSIONS:
                raise ValueError(f"unknown dimension `{dim}`; use one of {', '.join(DIMENSIONS)} or `expr`")
            total = sum(s.min or 0 for s in shares.values())
            if total > 1 + 1e-9:
                raise ValueError(f"the min shares of `{dim}` sum to {total:g}, past 1")
        return value

    def canonical(self) -> str:
        doc = self.model_dump(mode="json")
        if doc["pool"].get("licenses") is None:  # added later: specs without it keep their hash
            doc["pool"].pop("licenses", None)
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def json_schema() -> dict[str, Any]:
    return BuildSpec.model_json_schema()


def write_json_schema(path: Path = Path(__file__).parent.parent / "schemas" / "build_spec.schema.json") -> None:
    """Publish the spec's JSON Schema (`python -m lineage.build.spec` after changing the spec model)."""
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_json_schema()


def load_spec(source: str | Path | dict[str, Any]) -> BuildSpec:
    """Parse and validate a spec file (by extension) or a dict."""
    data = source if isinstance(source, dict) else _read(Path(source))
    _check_sizes(data, str(source) if not isinstance(source, dict) else "spec")
    try:
        return BuildSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc, str(source) if not isinstance(source, dict) else "spec")) from None


# Bounds on a spec, far above any real one, so that a hostile spec fails at once instead of using gigabytes.
MAX_SPEC_BYTES = 1 << 20
MAX_QUOTA_VALUES = 10_000  # values (or globs) over all quota dimensions
MAX_EXPR = 1_000
MAX_FLOORS = 1_000


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError(f"`{path}`: no such spec file")
    if (size := path.stat().st_size) > MAX_SPEC_BYTES:
        raise SpecError(f"`{path}`: the spec is {size:,} bytes, past the limit of {MAX_SPEC_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"`{path}`: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = _safe_yaml(path, text)
        else:
            raise SpecError(f"`{path}`: spec must be .yaml, .yml, .json or .toml")
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"`{path}`: not valid {path.suffix[1:].upper()}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError, whose import is lazy
        if type(exc).__module__.startswith("yaml"):
            raise SpecError(f"`{path}`: not valid YAML: {str(exc).splitlines()[0]}") from None
        raise
    if not isinstance(data, dict):
        raise SpecError(f"`{path}`: a spec is a mapping, got {type(data).__name__}")
    return data


def _safe_yaml(path: Path, text: str) -> Any:
    """YAML without anchors and aliases: an alias bomb (a few hundred bytes) expands to gigabytes."""
    import yaml

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            line = event.start_mark.line + 1
            raise SpecError(f"`{path}`:{line}: YAML anchors and aliases (`&`, `*`) are not allowed in a spec")
    return yaml.safe_load(text)


def _check_sizes(data: dict[str, Any], where: str) -> None:
    quotas, expr, floors = data.get("quotas"), data.get("expr"), data.get("floors")
    values = sum(len(v) for v in quotas.values() if isinstance(v, dict)) if isinstance(quotas, dict) else 0
    for field, found, limit in (("quotas", values, MAX_QUOTA_VALUES), ("expr", expr, MAX_EXPR),
                                ("floors", floors, MAX_FLOORS)):
        n = len(found) if isinstance(found, list) else found if isinstance(found, int) else 0
        if n > limit:
            raise SpecError(f"{where}: {field}: {n:,} entries, past the limit of {limit:,}")


def _describe(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if p not in ("function-after",))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    if err["type"] in ("greater_than_equal", "less_than_equal") and loc.split(".")[-1] in ("min", "max", "target"):
        msg = "must be between 0 and 1"
    got = f", got {err['input']!r}" if err["type"] not in ("missing", "value_error") else ""
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {loc or 'spec'}: {msg}{got}{more}"
