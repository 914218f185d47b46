"""The field helper every configuration section uses, and the error they raise."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


class ConfigError(Exception):
    """A configuration problem, with where it is; printed as-is to the operator."""


def _spec(default: Any = dataclasses.MISSING, *, minimum: float | None = 0, choices: tuple[str, ...] | None = None,
          factory: Any = dataclasses.MISSING, doc: str = "") -> Any:
    meta = {"minimum": minimum, "choices": choices, "doc": doc}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)

