"""What the tests share, in one place: running `moee` in-process (cli), reading scores.csv through
the package's own reader (scores), synthetic feature caches (synthetic), smaller copies of the
shared MTEB data (data), the auto weight's brute-force check (auto_weight), nDCG@10 computed in
NumPy (ndcg), where the repository and ../shared are (paths), the read-only guard of shared
fixtures (trees), the fault hook with the `sitecustomize` that arms it in child processes
(fault_hook, fault_site/), the Ray fault extractors (ray_faults) and a vector source that records
what mteb asks of it (vectors)."""
