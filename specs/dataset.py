"""Dataset: a pinned, checked data source and its splits."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .common import Name, Ref, Secret, SpecModel, SplitName, Uri
from .model import IoName

Char = Annotated[str, Field(min_length=1, max_length=1)]


class CsvOptions(SpecModel):
    """How a CSV file is written (the data_check step reads it with exactly these options)."""

    # false: the first line is data; the columns are named by `columns`, in order.
    header: bool = True
    delimiter: Char = ","
    quote: Char = '"'
    # Escape character inside quoted values (none: a doubled quote escapes a quote).
    escape: Char | None = None
    encoding: Literal["utf-8", "utf-16", "latin-1"] = "utf-8"


class Source(SpecModel):
    # Required unless the Dataset is `producedBy` a model's step (then it is that step's output).
    uri: Uri | None = None
    format: Literal["csv", "jsonl", "json", "parquet", "hf"]
    # Pinned version: a tag, date or revision. Bumping it is what retrains downstream models.
    # A produced dataset's version is its producer's: a change upstream retrains downstream.
    version: str | None = Field(default=None, min_length=1)
    # Optional content hash of the data, for reproducibility checks.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # CSV options (format csv only).
    csv: CsvOptions | None = None


class Column(SpecModel):
    name: str = Field(min_length=1)
    type: Literal["string", "int", "float", "bool", "date", "datetime", "category"]
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
    """One column's values, or a composite key's tuples (`columns`), appear once."""

    type: Literal["unique"]
    column: str | None = None
    columns: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> "Unique":
        if (self.column is None) == (self.columns is None):
            raise PydanticCustomError("value", "give `column` or `columns` (a composite key), not both or neither")
        return self


class Freshness(SpecModel):
    type: Literal["freshness"]
    column: str
    max_age_days: int = Field(ge=0)


class _Bounded(SpecModel):
    column: str
    min: float | int | None = None
    max: float | int | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> "_Bounded":
        if self.min is None and self.max is None:
            raise PydanticCustomError("missing-field", "give `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError("value", "`min` is above `max`")
        return self


class Range(_Bounded):
    """Every non-null value lies in [min, max]."""

    type: Literal["range"]


class Mean(_Bounded):
    """The column's mean lies in [min, max]."""

    type: Literal["mean"]


class Quantile(_Bounded):
    """The column's q-quantile (0.5: the median) lies in [min, max]."""

    type: Literal["quantile"]
    q: float = Field(ge=0.0, le=1.0)


def _check_regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as e:
        raise PydanticCustomError("value", "not a regular expression: {err}", {"err": str(e)}) from None
    return v


class Regex(SpecModel):
    """Every non-null value matches `pattern` as a whole (RE2 syntax, run by the engine)."""

    type: Literal["regex"]
    column: str
    pattern: Annotated[str, AfterValidator(_check_regex)] = Field(min_length=1)


class References(SpecModel):
    """Every non-null value of `column` appears in `key` (default: the same name) of another
    Dataset: a foreign key."""

    type: Literal["references"]
    column: str
    dataset: Ref
    key: str | None = None


class SchemaDrift(SpecModel):
    """The data's columns are exactly the declared `columns`: none added, none gone."""

    type: Literal["schemaDrift"]


Check = Annotated[Union[RowCount, NullFraction, AllowedValues, Unique, Freshness, Range, Mean, Quantile, Regex,
                        References, SchemaDrift], Field(discriminator="type")]


class ProducedBy(SpecModel):
    """The model step whose output this Dataset is: a custom step's named output, or a batch
    scoring step (its output is `predictions`)."""

    model: Ref
    step: Name
    output: IoName = "predictions"
    # The data file inside the output folder; default `data.<format>`.
    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] | None = None


class Pii(SpecModel):
    contains: bool = False
    columns: list[str] = Field(default_factory=list)


class DatasetSpec(SpecModel, defer_build=True):
    source: Source
    # `schema` is a pydantic BaseModel attribute, hence the Python name.
    columns: list[Column] = Field(default_factory=list)
    splits: dict[SplitName, float] = Field(default_factory=lambda: {"train": 0.8, "test": 0.2})
    checks: list[Check] = Field(default_factory=list)
    pii: Pii = Field(default_factory=Pii)
    license: str | None = None
    # Credentials to read the source. Only secret references.
    credentials: Secret | None = None
    # Made by a model's step (lineage: the producer runs first, and a change to it re-checks
    # this dataset and retrains what trains on it).
    produced_by: ProducedBy | None = None

    @model_validator(mode="after")
    def _source_or_producer(self) -> "DatasetSpec":
        if self.produced_by is None and (self.source.uri is None or self.source.version is None):
            raise PydanticCustomError("missing-field", "a Dataset needs `source.uri` and `source.version`, "
                                      "or `producedBy` (a model step that makes it)")
        if self.produced_by is not None and self.source.uri is not None:
            raise PydanticCustomError("value", "a produced Dataset's data is its producer's output: drop "
                                      "`source.uri` (or `producedBy`)")
        if self.produced_by is not None and self.source.format == "hf":
            raise PydanticCustomError("value", "a produced Dataset is a file (csv, jsonl, json or parquet), "
                                      "not a Hugging Face dataset")
        return self

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
