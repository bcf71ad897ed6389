"""Stage 2, CPU only: cached parts -> matrices -> combinations (HS, RW, MoEE) -> mteb -> scores.
Never imports the model code or torch."""
