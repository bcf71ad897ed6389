"""Stage 1, on a GPU box: texts -> prompts -> batches -> forward with router hooks -> pooled
features -> Parquet parts in the cache."""
