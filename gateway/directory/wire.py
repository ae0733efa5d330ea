"""The JSON form of directory records, shared by the HTTP adapter and the reference server.

Records travel as flat JSON objects with the dataclass field names; the sets of
`PersonRelations` travel as sorted lists. Decoding is strict (`WireError` on any missing
field or wrong type) because the HTTP adapter fails closed on a malformed answer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast, get_args

from gateway.directory.records import (
    ContractKind,
    CustomerKind,
    Part,
    PersonRelations,
)

__all__ = ["WireError", "decode", "decode_relations", "encode"]

R = TypeVar("R")
_SET_FIELDS = ("holder_of", "authorised_for", "member_of", "split_private_of", "uses_lines", "administers")
_CHOICES: dict[str, tuple[str, ...]] = {"part": get_args(Part)}
_KIND_CHOICES = {"CustomerRecord": get_args(CustomerKind), "ContractRecord": get_args(ContractKind)}


class WireError(ValueError):
    """An answer that does not have the shape of the record."""


def encode(record: Any) -> dict[str, Any]:
    data: dict[str, Any] = dataclasses.asdict(record)
    for name, value in data.items():
        if isinstance(value, frozenset):
            data[name] = sorted(value)
    return data


def decode(cls: type[R], data: Any) -> R:
    """Build record `cls` from a JSON object; optional fields may be missing or null."""
    if not isinstance(data, dict):
        raise WireError(f"{cls.__name__}: expected an object")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cast(Any, cls)):
        optional = f.default is not dataclasses.MISSING or "None" in str(f.type)
        value = data.get(f.name)
        if value is None:
            if not optional:
                raise WireError(f"{cls.__name__}.{f.name}: missing")
            if f.default is dataclasses.MISSING:
                kwargs[f.name] = None
            continue
        if f.name == "current":
            if not isinstance(value, bool):
                raise WireError(f"{cls.__name__}.current: expected a boolean")
        elif not isinstance(value, str):
            raise WireError(f"{cls.__name__}.{f.name}: expected a string")
        allowed = _KIND_CHOICES.get(cls.__name__) if f.name == "kind" else _CHOICES.get(f.name)
        if allowed is not None and value not in allowed:
            raise WireError(f"{cls.__name__}.{f.name}: unknown value")
        kwargs[f.name] = value
    return cls(**kwargs)


def decode_relations(person_id: str, data: Any) -> PersonRelations:
    if not isinstance(data, dict):
        raise WireError("PersonRelations: expected an object")
    sets: dict[str, frozenset[str]] = {}
    for name in _SET_FIELDS:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise WireError(f"PersonRelations.{name}: expected a list of strings")
        sets[name] = frozenset(value)
    return PersonRelations(person_id=person_id, **sets)
