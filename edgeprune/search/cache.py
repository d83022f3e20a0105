"""Trials cached by what decides their result, so a rerun costs nothing.

A trial's key is the sha256 of the model's bytes, the data's, the target profile, the
reference training epochs, the user metric named on the command line, the edgeprune
version, and the whole recipe (its seed included): the export is deterministic in
these (same inputs and seed, same bytes), so a second trial with the same key would
make the same files. The entry ``ROOT/KEY/`` holds:

    recipe.toml        the candidate recipe, as ``export --recipe`` reads it
    log.txt            the export's log
    out/TARGET/        the export's output folder (report.json, the artifacts)
    result.json        written last: the trial's summary; its presence means complete

A trial that stopped on an error in the recipe or the inputs (ConfigError, InputError)
is cached too, with the error, since it would stop there again; a trial pruned part way
or stopped by the device (DeviceError) is not.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..output import write_atomic
from ..recipe import Recipe


def inputs_digest(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def trial_key(inputs: dict, recipe: Recipe) -> str:
    """sha256 of the inputs (model, data, target ... digests) and the full recipe."""
    blob = json.dumps({"inputs": inputs, "recipe": recipe.model_dump(mode="json")}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class TrialCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> dict | None:
        """The cached summary of ``key``, or None (absent, incomplete, or unreadable)."""
        path = self.entry(key) / "result.json"
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(result, dict) or result.get("key") != key:
            return None
        if "error" not in result and not (self.entry(key) / "out").is_dir():
            return None              # the files were removed: not a hit
        return result

    def put(self, key: str, result: dict) -> None:
        write_atomic(self.entry(key) / "result.json",
                     (json.dumps({**result, "key": key}, indent=2, default=str) + "\n").encode())
