"""Per-sample features (MinHash signatures, embeddings), cached under data/features/<kind>/<config-hash>/."""
