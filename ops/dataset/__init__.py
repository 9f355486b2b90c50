"""Training data: benchmark annotations, the five tasks' samples, Parquet shards, the dataset build."""
