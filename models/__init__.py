"""Shipped expression models (installed as the package data `dfer_edge.models`)."""
