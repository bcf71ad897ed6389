"""What the two stages share on disk: the feature store (hive Parquet parts and manifests), task
snapshots and the cache inventory. No torch, no model code."""
