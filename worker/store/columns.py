"""State columns typed as their enums, stored as the plain values the migrations made.

SQLAlchemy's own Enum type would create a database enum (a migration, and a schema change for every new
state); this keeps VARCHAR and INTEGER columns and hands back `State.SENT`, not `"sent"`, on every read, so
the models' annotations are what a row holds.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class StoredEnum(TypeDecorator[Any]):
    """An enum member in, its value stored; the value read, the member out (an unknown value raises)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[Enum]) -> None:
        super().__init__()
        self.enum = enum

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        is_int = isinstance(next(iter(self.enum)).value, int)
        return dialect.type_descriptor(Integer() if is_int else String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum(value)

    @property
    def python_type(self) -> type[Enum]:
        return self.enum
