"""Human-readable sizes, one format everywhere (memory reports, `moee models`, `moee ls`)."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(size: float) -> str:
    """`512 B`, `1.5 KiB`, `3.2 MiB`, `2.00 GiB`: GiB and above keep two decimals, since model
    weights and free GPU memory are compared in GiB and a tenth is too coarse there."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{value:.0f} B"
            return f"{value:.2f} {unit}" if unit in ("GiB", "TiB") else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
