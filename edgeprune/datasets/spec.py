"""The recipe's ``[data]`` section: how image folders are read and split.

    data = { scale = 0.00392156862745098, offset = 0.0 }     # pixels 0..255 -> 0..1

``scale`` has no default: a model trained on pixels in 0..1 and one that rescales 0..255
itself read the same folder differently, so reading images without it is an error.
The settings used are recorded in report.json (``data.settings``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    scale: float | None = None          # images: each pixel value (0..255) is multiplied by this
    offset: float = 0.0                 # images: ... and then this is added
    interpolation: Literal["bilinear", "nearest", "bicubic", "area"] = "bilinear"
    split_seed: int = 0                 # shuffles the files before splitting off val/test
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)   # one folder of class folders only
    batch_size: int = Field(256, ge=1)  # samples read, checked and predicted at a time

    @model_validator(mode="after")
    def _fractions(self) -> "DataSpec":
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("validation_fraction + test_fraction must leave samples to train on")
        return self
