"""Stage 2 output: tables of scores.csv (per type, per task), the paper's numbers, rendering and
figures."""
