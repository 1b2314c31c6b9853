"""Dataset: a pinned, checked data source and its splits."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from .common import Secret, SpecModel, SplitName, Uri


class Source(SpecModel):
    uri: Uri
    format: Literal["csv", "jsonl", "json", "parquet", "hf"]
    # Pinned version: a tag, date or revision. Bumping it is what retrains downstream models.
    version: str = Field(min_length=1)
    # Optional content hash of the data, for reproducibility checks.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class Column(SpecModel):
    name: str = Field(min_length=1)
    type: Literal["string", "int", "float", "bool", "datetime", "category"]
    nullable: bool = False
    description: str | None = None


class RowCount(SpecModel):
    type: Literal["rowCount"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class NullFraction(SpecModel):
    type: Literal["nullFraction"]
    column: str
    max: float = Field(ge=0.0, le=1.0)


class AllowedValues(SpecModel):
    type: Literal["allowedValues"]
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)


class Unique(SpecModel):
    type: Literal["unique"]
    column: str


class Freshness(SpecModel):
    type: Literal["freshness"]
    column: str
    max_age_days: int = Field(ge=0)


Check = Annotated[Union[RowCount, NullFraction, AllowedValues, Unique, Freshness], Field(discriminator="type")]


class Pii(SpecModel):
    contains: bool = False
    columns: list[str] = Field(default_factory=list)


class DatasetSpec(SpecModel):
    source: Source
    # `schema` is a pydantic BaseModel attribute, hence the Python name.
    columns: list[Column] = Field(default_factory=list)
    splits: dict[SplitName, float] = Field(default_factory=lambda: {"train": 0.8, "test": 0.2})
    checks: list[Check] = Field(default_factory=list)
    pii: Pii = Field(default_factory=Pii)
    license: str | None = None
    # Credentials to read the source. Only secret references.
    credentials: Secret | None = None

    @field_validator("splits")
    @classmethod
    def _splits_sum_to_one(cls, splits: dict[str, float]) -> dict[str, float]:
        for name, frac in splits.items():
            if not 0.0 < frac <= 1.0:
                raise PydanticCustomError("value", "split '{name}' must be in (0, 1]", {"name": name})
        total = sum(splits.values())
        if splits and abs(total - 1.0) > 1e-9:
            raise PydanticCustomError("value", "splits must add up to 1.0, they add up to {total}",
                                      {"total": round(total, 6)})
        return splits
