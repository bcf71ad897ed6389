"""Stage 2 output: tables of scores.csv (per type, per task), the paper's numbers, rendering and
figures.

The output formats are defined here, not in render.py, so the CLI offers them without importing
pandas (every `moee` command, `extract` included, builds the report command's options).
"""

from typing import Literal, get_args

Format = Literal["markdown", "csv", "latex", "html"]
FORMATS: tuple[Format, ...] = get_args(Format)
