"""The core: the store handle and what it stands on (catalog, segments, locations, the writer lock, read-only SQL,
selections, ids). Nothing here imports a capability, the `Store` facade or the CLI (see tests/test_layers.py)."""
