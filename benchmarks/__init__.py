"""Speed and memory benchmarks of moee-pipeline against the reference approach (`make bench`)."""
