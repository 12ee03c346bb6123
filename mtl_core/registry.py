"""Plain-dict registries filled by decorators.

Datasets, sharing modes and weighting strategies each live in one `Registry`; the CLI
and the dashboard list what a registry holds, with each entry's description, paper
and (for teaching) formula, so nothing is listed twice by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from mtl_core.errors import ConfigError
from mtl_core.spec import NoOptions, StrictModel

__all__ = ["Entry", "NoOptions", "Registry", "StrictModel", "format_validation_error"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str
    paper: str = ""
    formula: str = ""
    options: type[BaseModel] = NoOptions
    extra: dict[str, Any] = field(default_factory=dict)

    def parse_options(self, options: dict[str, Any] | None, *, where: str) -> BaseModel:
        """Validate `options` with this entry's own pydantic model."""
        try:
            return self.options.model_validate(options or {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, prefix=f"{where}.options")) from None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "paper": self.paper,
            "formula": self.formula,
            "options": {
                k: {"default": _jsonable(f.default), "description": f.description or ""}
                for k, f in self.options.model_fields.items()
            },
            **{k: v for k, v in self.extra.items() if isinstance(v, (str, int, float, bool, list))},
        }


def _jsonable(value: Any) -> Any:
    from pydantic_core import PydanticUndefined

    if value is PydanticUndefined:
        return "(required)"
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def format_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """One readable line per pydantic error: `field: problem`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        loc = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            what = "option" if ".options" in f".{loc}" else "field"
            msg = f"unknown {what}; remove it or check its spelling"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "\n".join(lines)


class Registry(Generic[T]):
    """Named entries of one kind (datasets, sharing modes, weighting strategies)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        *,
        description: str,
        paper: str = "",
        formula: str = "",
        options: type[BaseModel] = NoOptions,
        **extra: Any,
    ) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            assert name not in self._entries, f"{self.kind} {name!r} registered twice"
            self._entries[name] = Entry(name, obj, description, paper, formula, options, extra)
            return obj

        return decorate

    def get(self, name: str, *, field_name: str | None = None) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            where = f"{field_name}: " if field_name else ""
            raise ConfigError(
                f"{where}unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries
