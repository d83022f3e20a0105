"""``python -m edgeprune.schemas``: write the shipped JSON Schemas from the models."""

from . import write_all

for path in write_all():
    print(f"wrote {path}")
