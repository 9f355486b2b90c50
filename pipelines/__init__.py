"""Dagster Definitions, jobs, schedules, sensors, partitions and the `gpt4scene` CLI."""
