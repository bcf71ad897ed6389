"""Offline fixtures for the tests and `make demo`: tiny random MoE models with a freshly trained
tokenizer (tiny.py) and toy tasks of all six types (toy.py). Not part of either stage: no module
of the package imports this one but demo.py (an import contract), and the task registry finds
the toy tasks through their `moee_pipeline.tasks` entry point, as it would any package's."""
