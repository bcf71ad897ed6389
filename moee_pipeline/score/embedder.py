"""A configuration's embeddings of any rows, computed when mteb asks, from the feature reader.

No embedding matrix of a whole task is ever made: the encoder asks for the rows of the texts in
hand (a corpus chunk of mteb's search, a task's sentences), and `ConfigRows` reads exactly those
rows (`cache.source`), standardises them with the setting's fitted statistics and combines them
(`combine.embed`). A task held in memory reads its rows from memory; one read from disk decodes
only the row groups holding them. The statistics are fitted in one pass over the reader's chunks
(`fit_setting`), taking the fit rows of each chunk in the order given, so a task of one chunk
gets exactly the statistics of the whole-matrix computation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from moee_pipeline.cache.source import RowReader
from moee_pipeline.score.combine import Combination, Parts, embed, hs_column, hs_positions
from moee_pipeline.score.standardise import (
    Block,
    Setting,
    Standardiser,
    fit_standardiser,
    needs_units,
)
from moee_pipeline.vocabulary import HS, RW

__all__ = ["BLOCK_ROWS", "ConfigRows", "columns_of", "fit_columns", "fit_setting", "parts_of_rows"]

#: Rows standardised and combined at once when embedding (bounds the float64 working copies).
BLOCK_ROWS = 8192


def columns_of(combo: Combination) -> list[str]:
    """The cached columns a configuration's embedding reads."""
    hs = hs_column(combo.pooling, combo.hs_layers)
    return [hs] * combo.uses_hs + [f"rw_{combo.pooling}"] * combo.uses_rw


def fit_columns(combo: Combination) -> list[str]:
    """The columns a configuration's setting is fitted on: its HS and RW (every method of the
    setting shares the fit)."""
    return [hs_column(combo.pooling, combo.hs_layers), f"rw_{combo.pooling}"]


def _fit_blocks(
    reader: RowReader, columns: Sequence[str], fit_rows: np.ndarray | None, chunk_rows: int
) -> Iterator[Block]:
    """The fit rows chunk by chunk, in the order given within each chunk. An entry of one chunk
    (held in memory) is one block, exactly the whole-matrix statistics; a corpus read in chunks
    comes in blocks of at most `BLOCK_ROWS` rows, so its float64 working copies stay small."""
    hs_col = next((c for c in columns if c.startswith("hs")), None)
    rw_col = next((c for c in columns if c.startswith("rw")), None)
    fit = None if fit_rows is None else np.asarray(fit_rows, dtype=np.int64)
    blocks = reader.rows > chunk_rows
    for start, arrays in reader.chunks(columns, chunk_rows):
        stop = start + len(next(iter(arrays.values())))
        if fit is None:
            pick: np.ndarray | slice = slice(None)
        else:
            pick = fit[(fit >= start) & (fit < stop)] - start
        if blocks:
            picked = np.arange(stop - start) if isinstance(pick, slice) else pick
            picks: list[np.ndarray | slice] = [
                picked[i : i + BLOCK_ROWS] for i in range(0, len(picked), BLOCK_ROWS)
            ]
        else:
            picks = [pick]
        for rows in picks:
            yield (
                None if hs_col is None else arrays[hs_col][rows],
                None if rw_col is None else arrays[rw_col][rows],
            )


def fit_setting(
    reader: RowReader,
    combo: Combination,
    *,
    fit_rows: np.ndarray | None,
    chunk_rows: int,
) -> Standardiser:
    """The configuration's setting fitted on `fit_rows` (None: every row), in one pass over the
    reader in chunks of `chunk_rows` rows; both HS and RW of the pooling are fitted, so every
    method of the setting shares it."""
    m = reader.manifest
    setting = Setting.of(
        combo,
        n_moe_layers=int(m["n_moe_layers"]),
        n_experts=int(m["n_experts"]),
        n_layers=int(m.get("n_layers") or 0),
    )
    columns = fit_columns(combo)
    return fit_standardiser(setting, _fit_blocks(reader, columns, fit_rows, chunk_rows))


def parts_of_rows(
    reader: RowReader, standardiser: Standardiser, combo: Combination, rows: np.ndarray
) -> Parts:
    """Every block (`combine.Parts`) of some rows: what the auto weight's pairs are scored on."""
    hs, rw = fit_columns(combo)
    arrays = reader.read(rows, [hs, rw])
    return standardiser.parts(hs=arrays[hs], rw=arrays[rw])


@dataclass(frozen=True)
class ConfigRows:
    """The embeddings of one configuration for the rows asked for (a `score.vectors`
    `VectorSource`, what the cached encoder reads)."""

    reader: RowReader
    standardiser: Standardiser
    combo: Combination

    @property
    def rows(self) -> int:
        return self.reader.rows

    @property
    def dim(self) -> int:
        """HS's hidden size, RW's selected layers x experts, both for the MoEE methods."""
        m = self.reader.manifest
        layers = hs_positions(self.combo.hs_layers, int(m.get("n_layers") or 0))
        widths = {
            HS: int(m["hidden_size"]) * (1 if layers is None else len(layers)),
            RW: len(self.combo.layers or range(int(self.reader.manifest["n_moe_layers"])))
            * int(self.reader.manifest["n_experts"]),
        }
        return widths[HS] * self.combo.uses_hs + widths[RW] * self.combo.uses_rw

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The (len(rows), dim) float32 embeddings of `rows`, computed from their features.

        The rows are read at once (each row group decoded once), then standardised and combined
        `BLOCK_ROWS` at a time into the result, so the float64 working copies stay small
        whatever mteb asks for; every step is row-wise, so the blocks change no bit.
        """
        hs_col, rw_col = fit_columns(self.combo)
        arrays = self.reader.read(rows, columns_of(self.combo))
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for start in range(0, len(rows), BLOCK_ROWS):
            block = slice(start, start + BLOCK_ROWS)
            parts = self.standardiser.parts(
                hs=arrays[hs_col][block] if hs_col in arrays else None,
                rw=arrays[rw_col][block] if rw_col in arrays else None,
                units=needs_units(self.combo),
            )
            out[block] = embed(parts, self.combo)
        return out
