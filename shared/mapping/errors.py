"""Errors of the mapping layer. Load errors are collected (never only the first); record errors are data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackProblem:
    """One thing wrong with a pack, located by file, mapping and field."""

    file: str
    mapping: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.mapping is not None:
            where.append(f"mapping '{self.mapping}'")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{': '.join(where)}: {self.message}"


class MappingError(Exception):
    """Base class of every error raised by shared.mapping."""


class PackError(MappingError):
    """A pack failed to load; `problems` lists every problem found, each naming file, mapping and field."""

    def __init__(self, problems: list[PackProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in mapping pack:\n{lines}")


class DependencyCycleError(MappingError):
    """The mappings' dependencies (explicit or through lookups) form a cycle; `cycle` lists it in order."""

    def __init__(self, file: str, cycle: list[str]) -> None:
        self.file = file
        self.cycle = list(cycle)
        super().__init__(f"{file}: dependency cycle: {' → '.join(self.cycle)}")


class UnknownMappingError(MappingError, KeyError):
    """`Pack.mapping(name)` was asked for a mapping the pack does not define."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class TransformError(MappingError, ValueError):
    """A transform cannot handle one value; the engine turns it into a per-record field error."""


class NotInvertibleError(TransformError):
    """A transform has no inverse, so it cannot map a value back."""


@dataclass(frozen=True)
class FieldError:
    """A per-record failure of one field: the record is not written, the batch goes on."""

    file: str
    mapping: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: mapping '{self.mapping}': field '{self.field}': {self.message}"
