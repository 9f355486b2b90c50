"""Pure compute for the GPT4Scene pipeline. Nothing here imports Dagster."""
