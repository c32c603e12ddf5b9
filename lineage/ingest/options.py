"""Ingest options: provenance defaults from flags, and how to read each record."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from lineage.errors import LineageError, UsageError, given, option
from lineage.languages import check_language
from lineage.limits import DEFAULT_MAX_RECORD_BYTES, MAX_GENERATION, default_ingest_memory_limit
from lineage.names import check_name
from lineage.schemas import ORIGINS


class IngestFields(TypedDict, total=False):
    """The keyword options of `Store.ingest` (the fields of `IngestOptions`; `tags` may also be a list or one
    string). tests/test_ingest.py checks that the two name the same fields."""

    origin: str
    source: str
    method: str
    generator: str
    generation: int
    license: str
    language: str
    tags: Sequence[str] | str
    gen_params: dict[str, Any]
    text_field: str
    template: str
    id_field: str
    parent_field: str
    skip_bad: bool
    allow_missing_parents: bool
    max_record_bytes: int
    input_format: str
    memory_limit: str
    set_name: str


@dataclass(frozen=True)
class IngestOptions:
    """Flag values apply to every row unless the row has a column of the same name."""

    origin: str | None = None
    source: str | None = None
    method: str | None = None
    generator: str | None = None
    generation: int | None = None
    license: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    gen_params: dict[str, Any] | None = None
    text_field: str = "text"
    template: str | None = None
    id_field: str = "id"
    parent_field: str = "parent_ids"
    skip_bad: bool = False
    allow_missing_parents: bool = False
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    input_format: str | None = None
    memory_limit: str | None = None  # None: `limits.default_ingest_memory_limit()`, not recorded with the batch
    set_name: str | None = None

    def __post_init__(self) -> None:
        if self.origin is not None and self.origin not in ORIGINS:
            raise UsageError("origin", self.origin, f": must be one of {', '.join(ORIGINS)}")
        if self.generation is not None and not 0 <= self.generation <= MAX_GENERATION:
            raise LineageError(
                f"{given('generation', self.generation)}: must be between 0 and {MAX_GENERATION:,}"
            )
        if self.origin == "real" and self.generator:
            raise LineageError(
                f"real data has no generator: drop {option('generator')} or use {option('origin', 'synthetic')}"
            )
        if self.origin == "real" and self.generation not in (None, 0):
            raise LineageError(f"real data is generation 0; got {given('generation', self.generation)}")
        if self.memory_limit is not None and not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", self.memory_limit):
            raise UsageError("memory_limit", self.memory_limit, ": must look like 512MB or 2GB")
        if self.max_record_bytes <= 0:
            raise UsageError("max_record_bytes", self.max_record_bytes, ": must be positive")
        if self.language is not None:
            check_language(self.language)
        self.template_fields()
        if self.set_name is not None:
            check_name("set", self.set_name)

    def effective_memory_limit(self) -> str:
        return self.memory_limit or default_ingest_memory_limit()

    def template_fields(self) -> list[tuple[str, str | None]]:
        """(literal, field) pairs of the template; field is None after the last placeholder."""
        if self.template is None:
            return []
        try:
            parts = [(lit, name) for lit, name, _, _ in string.Formatter().parse(self.template)]
        except ValueError as exc:
            raise LineageError(f"{option('template')} `{self.template}`: {exc}") from None
        if not any(name for _, name in parts):
            example = "'{prompt}\\n\\n{response}'"
            raise LineageError(f"{option('template')} `{self.template}` names no field; write e.g. {example}")
        return parts

    def as_json(self) -> str:
        """Canonical JSON of the options, as recorded in the batch."""
        values = {k: v for k, v in self.__dict__.items() if v not in (None, (), False)}
        return json.dumps(values, sort_keys=True, default=list)
