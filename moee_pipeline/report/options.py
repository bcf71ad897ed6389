"""What a report shows (`ReportOptions`) and its error, without pandas.

The CLI reads the report command's defaults from `ReportOptions`, and every `moee` command builds
that command's options, so this module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

from moee_pipeline.errors import MoeeError
from moee_pipeline.vocabulary import AUTO, WeightRule, check_weight

__all__ = ["ReportError", "ReportOptions"]


class ReportError(MoeeError, ValueError):
    """scores.csv is missing, malformed, or holds nothing the options ask for."""


@dataclass(frozen=True)
class ReportOptions:
    """Which rows make the tables and how MoEE-sum's weight is chosen (see `weight_rules`)."""

    #: The split the tables report.
    split: str = "test"
    #: Keep only this fixed MoEE-sum weight.
    weight: float | None = None
    #: Keep the MoEE-sum rows of this rule (only `auto`: the label-free weight).
    weight_rule: WeightRule | None = None
    #: Pick MoEE-sum's weight per task on this split (the report's own split: the oracle).
    select_on: str | None = None

    def __post_init__(self) -> None:
        """One weight rule at a time, and a weight scoring could have used."""
        chosen = [
            name
            for name, value in (
                ("--weight", self.weight),
                ("--weight-rule", self.weight_rule),
                ("--select-weight-on", self.select_on),
            )
            if value is not None
        ]
        if len(chosen) > 1:
            raise ReportError(f"use one of {', '.join(chosen)}, not several")
        if self.weight_rule not in (None, AUTO):
            raise ReportError(f"unknown --weight-rule {self.weight_rule!r}: use {AUTO}")
        if self.weight is not None:  # NaN would match no row, and say so misleadingly
            try:
                check_weight(self.weight)
            except ValueError as error:
                raise ReportError(f"--weight: {error}") from None

    @property
    def declared(self) -> bool:
        """Whether MoEE-sum's weight follows a declared rule (one row per configuration)."""
        return self.weight is not None or self.weight_rule is not None or bool(self.select_on)

    @property
    def oracle(self) -> bool:
        """Whether the weight is picked on the reported split's own scores."""
        return self.select_on == self.split
