"""GPT4Scene's visual prompts: point cloud, instances, BEV, frames and markers, and the per-scene driver."""
