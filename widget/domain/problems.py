"""What is wrong with what an admin entered, as codes with a field key: the rules find problems,
the web layer words them in the reader's language."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) with what the admin entered, attached to a field key."""

    field: str
    code: str
    params: Mapping[str, str] = dc_field(default_factory=dict)


class Invalid(ValueError):
    """What the admin entered breaks the rules; ``problems`` holds every reason at once."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(", ".join(f"{p.field}: {p.code}" for p in problems))
        self.problems = list(problems)
