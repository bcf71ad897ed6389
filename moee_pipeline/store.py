"""The Parquet feature cache: layout, shard writing, manifests and reading (being written by the lead)."""
