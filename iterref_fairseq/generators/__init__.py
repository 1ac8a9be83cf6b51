"""Decoding algorithms; model-agnostic, driven by model hooks."""

