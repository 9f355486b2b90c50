"""Dagster resources: storage root, Ray, training launcher, VLM client."""
