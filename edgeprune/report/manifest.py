"""manifest.json: every file of an output folder with its sha256, the settings that made it
and its parent, as pydantic models (the JSON Schema is generated from them:
edgeprune/schemas/manifest.schema.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

_STRICT = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)
SHA256 = r"^[0-9a-f]{64}$"


class Source(BaseModel):
    """The model the run started from."""

    model_config = _STRICT
    name: StrictStr
    origin: StrictStr | None = None
    sha256: StrictStr | None = None


class Stage(BaseModel):
    """A model that exists only in memory (the baseline, the compressed model)."""

    model_config = _STRICT
    name: StrictStr
    file: None = None
    parent: StrictStr | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class ManifestArtifact(BaseModel):
    """A file of the output folder (``file`` relative to it)."""

    model_config = _STRICT
    name: StrictStr = Field(min_length=1)
    file: StrictStr = Field(min_length=1)
    format: StrictStr
    precision: StrictStr
    encoding: StrictStr
    sha256: StrictStr = Field(pattern=SHA256)
    size_bytes: StrictInt = Field(ge=0)
    parent: StrictStr | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class Manifest(BaseModel):
    model_config = _STRICT
    schema_version: StrictInt
    target: StrictStr
    deploy: StrictStr
    source: Source
    stages: list[Stage]
    artifacts: list[ManifestArtifact]


def checked_manifest(data: dict) -> dict:
    """``data`` after checking it against :class:`Manifest` (it is written as it is)."""
    Manifest.model_validate(data)
    return data
