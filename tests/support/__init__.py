"""What the tests share, in one place: running the CLI in-process, reading scores.csv through the
package's own reader, synthetic feature caches, fixtures' read-only guards, the fault hook (with
its `sitecustomize` for child processes) and the Ray fault extractors."""
