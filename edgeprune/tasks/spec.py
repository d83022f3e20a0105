"""The recipe's ``[task]`` section: what the model's outputs are, when the model and data
cannot say it unambiguously.

    task = { kind = "regression" }                               # every output
    task = { outputs = { label = "classification", box = "regression" } }

``kind = "auto"`` (the default) infers each output's kind from the model and the data
(see :mod:`edgeprune.tasks.infer`); an output the inference cannot decide is an error
that points here. Nothing in this section runs code: a metric function is accepted
from the command line or the Python API only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["classification", "regression"]


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    kind: Literal["auto", "classification", "regression"] = "auto"
    outputs: dict[str, Kind] = Field(default_factory=dict)

    def declared(self, output: str) -> Kind | None:
        """The kind the recipe sets for ``output``, or None to infer it."""
        if output in self.outputs:
            return self.outputs[output]
        return None if self.kind == "auto" else self.kind
