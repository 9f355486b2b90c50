"""ScanNet's file formats: .sens, PLY, segments/aggregation JSON, frame sources, scene IDs; readers and writers."""
