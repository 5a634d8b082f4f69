"""``courier bench``: measured scenarios (see docs/benchmarks.md)."""
