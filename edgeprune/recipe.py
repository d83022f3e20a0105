"""The compression recipe: what to do to a model before it is exported.

A target profile carries a default recipe in its ``[recipe]`` table; a recipe
file given with ``--recipe`` replaces whole sections of it (``prune``,
``finetune``, ``quantize`` ...). Unknown keys and wrong types are errors, and so
are numbers that are not finite (``inf``, ``nan``) or outside their range (a
seed outside 0..2**32-1, more than 10,000 epochs).

Example (TOML)::

    prune = { schedule = "polynomial", final_sparsity = 0.75, structure = "unstructured" }
    # prune = false                      # no pruning: post-training quantization only
    finetune = { epochs = 4 }
    quantize = ["float32", "dynamic", "float16", "int8"]
    formats = ["tflite", "onnx"]
    deploy = "int8.tflite"
    int8_per_channel = false             # int8 TFLite weights: one scale per tensor (smaller)
    task = { kind = "regression" }       # when the model and data cannot say (edgeprune.tasks.spec)
    data = { scale = 0.00392156862745098 }   # reading image folders (edgeprune.datasets.spec)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .datasets.spec import DataSpec
from .tasks.spec import TaskSpec

from .limits import EPOCHS_MAX, SEED_MAX

Precision = Literal["float32", "dynamic", "float16", "int8"]
Format = Literal["tflite", "onnx"]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class PruneSpec(BaseModel):
    """Magnitude pruning with tfmot, or channel pruning that shrinks the graph."""

    model_config = _STRICT
    structure: Literal["unstructured", "block", "m_by_n", "channel"] = "unstructured"
    schedule: Literal["polynomial", "constant"] = "polynomial"
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    final_sparsity: float = Field(0.75, ge=0.0, lt=1.0)
    scope: Literal["per_layer", "global"] = "per_layer"
    block_size: tuple[Annotated[int, Field(ge=1, le=4096)], Annotated[int, Field(ge=1, le=4096)]] = (1, 1)
    m_by_n: tuple[int, int] = (2, 4)
    frequency: int = Field(10, ge=1, le=1_000_000)
    importance: Literal["l1", "l2"] = "l1"
    per_layer: dict[str, float] = Field(default_factory=dict)
    # The floor: no layer keeps fewer than 1 - max_layer_sparsity of its weights when the
    # global ranking decides (the rest is spread over the other layers); a layer past it
    # for any other reason (per_layer, per-layer scope) is named in a warning.
    max_layer_sparsity: float = Field(0.9, gt=0.0, lt=1.0)
    # The first and the last prunable layers (the stem and the classifier) are pruned to
    # at most this unless named in per_layer; None prunes them like any other layer.
    stem_and_classifier_max_sparsity: float | None = Field(0.5, ge=0.0, lt=1.0)
    # structure = "channel" only: after the channels are removed and fine-tuned, magnitude
    # pruning (unstructured; scope and floors as above, per_layer left to the channels) takes
    # the kernels left to this sparsity, with the same fine-tuning. None: channel pruning alone.
    then_sparsity: float | None = Field(None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> "PruneSpec":
        if self.then_sparsity is not None and self.structure != "channel":
            raise ValueError('then_sparsity applies only to structure = "channel" (unstructured pruning '
                             'of the kernels the channel pruning leaves)')
        if self.initial_sparsity > self.final_sparsity:
            raise ValueError("initial_sparsity must not exceed final_sparsity")
        if self.structure == "block" and self.block_size == (1, 1):
            raise ValueError('structure = "block" needs block_size, e.g. [16, 1] (kernels are [in, out])')
        if self.structure != "block" and self.block_size != (1, 1):
            raise ValueError('block_size applies only to structure = "block"')
        if self.structure == "m_by_n" and self.m_by_n != (2, 4):
            raise ValueError("tfmot supports m_by_n = [2, 4] only")
        for layer, ratio in self.per_layer.items():
            if not 0.0 <= ratio < 1.0:
                raise ValueError(f"per_layer.{layer} must be in [0, 1), got {ratio}")
        return self


class OnnxQuantSpec(BaseModel):
    """onnxruntime's static int8 (QDQ) quantization of the ONNX file.

    ``reduce_range`` keeps weights in 7 bits: onnxruntime's int8 kernels on x86 CPUs
    without AVX-VNNI add pairs of 8-bit products in 16 bits, which saturate with
    full-range weights, so a file quantized with 8-bit weights computes wrong values
    there (and right ones on Arm or with VNNI). 7 bits are exact on every CPU.
    """

    model_config = _STRICT
    per_channel: bool = True
    reduce_range: bool = True
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"


class BackoffSpec(BaseModel):
    """What the export tries when the deployed artifact misses ``max_accuracy_drop``
    (see edgeprune/search/backoff.py): longer fine-tuning, the same distilled, lower
    sparsity, no pruning, in that order, within a budget of extra time."""

    model_config = _STRICT
    distill: bool = True            # a rung fine-tuned against the source model's outputs
    finetune_factor: float = Field(2.0, ge=1.0, le=10.0)
    sparsity_factors: tuple[float, ...] = (0.67, 0.33)   # x final_sparsity: 0.75 -> 0.5, 0.25
    try_dense: bool = True
    max_extra_factor: float = Field(3.0, gt=0.0)        # x the first export's time
    max_extra_seconds: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _factors(self) -> "BackoffSpec":
        if any(not 0.0 < f < 1.0 for f in self.sparsity_factors):
            raise ValueError("sparsity_factors must each be in (0, 1)")
        return self


class DistillSpec(BaseModel):
    """Fine-tune against the source model's outputs as well as the labels (knowledge
    distillation; edgeprune/compress/distill.py)."""

    model_config = _STRICT
    alpha: float = Field(0.7, gt=0.0, le=1.0)         # weight of the source model's outputs
    temperature: float = Field(4.0, gt=0.0, le=100.0)


class FinetuneSpec(BaseModel):
    model_config = _STRICT
    epochs: int = Field(4, ge=0, le=EPOCHS_MAX)
    batch_size: int = Field(32, ge=1, le=1_048_576)
    learning_rate: float = Field(1e-3, gt=0.0)
    distill: DistillSpec | None = None


class RegularizeSpec(BaseModel):
    """A sparsity-inducing fine-tuning phase before pruning."""

    model_config = _STRICT
    kind: Literal["l1", "l2", "group_lasso"] = "group_lasso"
    strength: float = Field(1e-4, gt=0.0)
    epochs: int = Field(2, ge=1, le=EPOCHS_MAX)


class ClusterSpec(BaseModel):
    model_config = _STRICT
    number_of_clusters: int = Field(16, ge=2, le=256)
    preserve_sparsity: bool = True
    centroid_init: Literal["kmeans++", "linear", "density-based", "random"] = "kmeans++"
    epochs: int = Field(2, ge=0, le=EPOCHS_MAX)
    fold_batchnorm: bool = True     # fold BatchNormalization into the kernel first (compress/fold.py)


class QatSpec(BaseModel):
    """Quantization-aware training; ``preserve`` picks tfmot's collaborative schemes."""

    model_config = _STRICT
    preserve: Literal["none", "sparsity", "clusters", "sparsity_and_clusters"] = "none"
    epochs: int = Field(2, ge=1, le=EPOCHS_MAX)


class Recipe(BaseModel):
    model_config = _STRICT
    seed: int = Field(0, ge=0, le=SEED_MAX)
    prune: PruneSpec | None = Field(default_factory=PruneSpec)
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec)
    regularize: RegularizeSpec | None = None
    cluster: ClusterSpec | None = None
    qat: QatSpec | None = None
    quantize: tuple[Precision, ...] = ("float32", "dynamic", "float16", "int8")
    int8_io: bool = False
    int8_per_channel: bool = True    # int8 TFLite weights: a scale per output channel, or per tensor
    formats: tuple[Format, ...] = ("tflite", "onnx")
    deploy: str = "int8.tflite"
    tflite_sparse_encoding: Literal["auto", "always", "never"] = "auto"
    tflite_strip: bool = False       # TFLite files without what no runtime reads (export/names.py)
    representative_samples: int = Field(200, ge=1, le=1_000_000)
    onnx_quant: OnnxQuantSpec = Field(default_factory=OnnxQuantSpec)
    backoff: BackoffSpec | None = Field(default_factory=BackoffSpec)
    task: TaskSpec = Field(default_factory=TaskSpec)
    data: DataSpec = Field(default_factory=DataSpec)

    @field_validator("prune", "regularize", "cluster", "qat", mode="before")
    @classmethod
    def _off(cls, value):
        """``prune = false`` in TOML (which has no null) turns a step off."""
        return None if value is False else value

    @model_validator(mode="after")
    def _consistent(self) -> "Recipe":
        if not self.quantize:
            raise ValueError("quantize must name at least one precision")
        if not self.formats:
            raise ValueError("formats must name at least one format")
        if self.deploy not in self.artifact_names():
            raise ValueError(
                f"deploy = {self.deploy!r} is not among the artifacts this recipe makes: "
                f"{', '.join(self.artifact_names())}")
        return self

    def artifact_names(self) -> list[str]:
        """Names ``PRECISION.FORMAT`` of every artifact the recipe produces, in order.

        ONNX is exported at float32 and int8 (static QDQ); other precisions are TFLite-only.
        """
        names = []
        for fmt in self.formats:
            for precision in self.quantize:
                if fmt == "onnx" and precision not in ("float32", "int8"):
                    continue
                names.append(f"{precision}.{fmt}")
        return names


def recipe_from_mapping(data: dict, *, source: str) -> Recipe:
    """Build a recipe from a parsed mapping, turning validation errors into ConfigError."""
    from .config_io import validate_model

    return validate_model(Recipe, data, source=source)


def load_recipe(path: str | Path, base: Recipe | None = None) -> Recipe:
    """Read a recipe TOML file; its top-level keys replace those of ``base``."""
    from .config_io import read_toml

    path = Path(path)
    data = read_toml(path, what="recipe")
    merged = dict(base.model_dump(mode="python", exclude_unset=False) if base else {})
    merged.update(data)
    return recipe_from_mapping(_listify(merged), source=str(path))


def _listify(data: dict) -> dict:
    """TOML arrays are lists; the strict model wants tuples for tuple fields."""
    out = {}
    for key, value in data.items():
        if isinstance(value, list):
            out[key] = tuple(value)
        elif isinstance(value, dict):
            out[key] = _listify(value)
        else:
            out[key] = value
    return out
