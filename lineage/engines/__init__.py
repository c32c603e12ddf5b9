"""Engines that run per-batch steps over a selection: in this process (`local`) or on a Ray cluster (`ray`)."""
