"""Thin Dagster assets: each wires one ops/ computation to storage, partitions, metadata and resources."""
