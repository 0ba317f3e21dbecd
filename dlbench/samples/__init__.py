"""Small real data samples shipped with dlbench (see scripts/make_samples.py for provenance)."""
