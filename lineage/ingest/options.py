"""Ingest options: provenance defaults from flags, and how to read each record."""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any

from lineage.errors import LineageError
from lineage.limits import DEFAULT_MAX_RECORD_BYTES, DEFAULT_MEMORY_LIMIT, MAX_GENERATION
from lineage.names import check_name
from lineage.schemas import ORIGINS


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
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    set_name: str | None = None

    def __post_init__(self) -> None:
        if self.origin is not None and self.origin not in ORIGINS:
            raise LineageError(f"--origin must be one of {', '.join(ORIGINS)}; got `{self.origin}`")
        if self.generation is not None and not 0 <= self.generation <= MAX_GENERATION:
            raise LineageError(f"--generation must be between 0 and {MAX_GENERATION:,}; got {self.generation}")
        if self.origin == "real" and self.generator:
            raise LineageError("real data has no generator: drop --generator or use --origin synthetic")
        if self.origin == "real" and self.generation not in (None, 0):
            raise LineageError(f"real data is generation 0; got --generation {self.generation}")
        if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", self.memory_limit):
            raise LineageError(f"--memory-limit must look like 512MB or 2GB; got `{self.memory_limit}`")
        if self.max_record_bytes <= 0:
            raise LineageError("--max-record-bytes must be positive")
        self.template_fields()
        if self.set_name is not None:
            check_name("set", self.set_name)

    def template_fields(self) -> list[tuple[str, str | None]]:
        """(literal, field) pairs of the template; field is None after the last placeholder."""
        if self.template is None:
            return []
        try:
            parts = [(lit, name) for lit, name, _, _ in string.Formatter().parse(self.template)]
        except ValueError as exc:
            raise LineageError(f"--template `{self.template}`: {exc}") from None
        if not any(name for _, name in parts):
            example = "'{prompt}\\n\\n{response}'"
            raise LineageError(f"--template `{self.template}` names no field; write e.g. {example}")
        return parts

    def as_json(self) -> str:
        """Canonical JSON of the options, as recorded in the batch."""
        values = {k: v for k, v in self.__dict__.items() if v not in (None, (), False)}
        return json.dumps(values, sort_keys=True, default=list)
