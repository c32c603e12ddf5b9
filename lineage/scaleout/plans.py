"""Distributed plans of the selection filters whose work would not fit the driver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PLANS: dict[str, Callable[..., Any]] = {}
