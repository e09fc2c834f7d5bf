"""Beam pipelines: composite PTransforms wiring corpusgen's functions, one per step."""
