"""Scale-out on Ray: the same filters over the store's Parquet segments on a Ray cluster.

`decide.decide_on_ray` is the Ray executor of a filter run; `cluster` connects to (or starts) Ray;
`plans` holds the distributed versions of the filters whose reduce phase would not fit one machine.
Workers stage their output under STORE/tmp/<run_id>/; only the driver registers it in the catalog.
"""
