"""Datasets, featurization and training noise (no registries)."""

