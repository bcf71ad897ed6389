"""Offline fixtures for the tests and `make demo`: tiny random MoE models with a freshly trained
tokenizer (tiny.py) and toy tasks of all six types (toy.py). Not part of either stage."""
