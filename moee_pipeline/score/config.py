"""`ScoreConfig`: everything one `moee score` run needs, checked once, typed with the vocabulary.

Kept free of NumPy, pandas and mteb so the CLI can build its options (and their defaults) from
this class on every `moee` command without importing the scoring stack.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moee_pipeline.cache.layout import cache_root, check_outside_cache
from moee_pipeline.errors import MoeeError
from moee_pipeline.prompts import prompt_id
from moee_pipeline.sides import SidePrompts, SidesError, side_prompts
from moee_pipeline.vocabulary import (
    AUTO,
    ENGINES,
    METHODS,
    POOLINGS,
    RW_MODES,
    SUM,
    ZSCORE_FITS,
    ZSCORE_MODES,
    Engine,
    Method,
    Pooling,
    RwMode,
    ZscoreFit,
    ZscoreMode,
    check_choice,
    check_weight,
)

__all__ = ["ScoreConfig", "ScoreError", "default"]


class ScoreError(MoeeError, ValueError):
    """Scoring cannot go on as asked (a bad setting, no record of the texts a split encodes)."""


@dataclass(frozen=True)
class ScoreConfig:
    """Everything one `moee score` run needs; each tuple is a sweep dimension.

    The CLI's option defaults are read from these fields (`default`), so a default is changed
    here and nowhere else.
    """

    model: str
    prompts: tuple[str, ...] = ("none",)
    #: A retrieval task's queries' and documents' own prompts (sides.py), each defaulting to
    #: the one `prompts` value; other task types are scored under `prompts`.
    query_prompt: str | None = None
    document_prompt: str | None = None
    tasks: tuple[str, ...] | None = None
    task_types: tuple[str, ...] | None = None
    #: Tasks of a benchmark left out as of a type we do not score, (task, type): written beside
    #: scores.csv for the report's notes (`--benchmark ... --skip-unsupported`).
    skipped: tuple[tuple[str, str], ...] = ()
    methods: tuple[Method, ...] = METHODS
    #: Fixed MoEE-sum weights (each 0..MAX_WEIGHT); `auto_weight` adds the label-free one.
    weights: tuple[float, ...] = (1.0,)
    auto_weight: bool = False
    rw: tuple[RwMode, ...] = ("logits",)
    pooling: tuple[Pooling, ...] = ("last",)
    layers: tuple[str, ...] = ("all",)
    #: Hidden-state layers: "last" (hs_last/hs_mean), "all" or decoder-layer positions ("0-3").
    hs_layers: tuple[str, ...] = ("last",)
    zscore: tuple[ZscoreMode, ...] = ("auto",)
    splits: tuple[str, ...] = ("test",)
    zscore_fit: ZscoreFit = "split"
    #: The cache root; by default the CLI's (`$MOEE_CACHE_DIR`, else ./cache).
    cache_dir: Path = field(default_factory=cache_root)
    data_dir: Path | None = None
    output: Path = Path("results")
    progress: bool = True
    #: (task, prompt) units scored at once; 1 scores them in this process, one after another.
    workers: int = 1
    #: local: this machine (processes when workers > 1); ray: Ray tasks on a cluster.
    engine: Engine = "local"
    ray_address: str | None = None
    #: Rows of features read, standardised and embedded at once: an entry with more rows is
    #: read from disk in chunks of this many (peak memory follows it, not the corpus), and
    #: mteb's search embeds a corpus in chunks of this many documents; a smaller entry is held
    #: in memory whole.
    chunk_rows: int = 50_000

    def __post_init__(self) -> None:
        """Refuse a setting that would fail later or silently mean something else, in one line."""
        try:
            for method in self.methods:
                check_choice("--method", method, METHODS)
            for mode in self.rw:
                check_choice("--rw", mode, RW_MODES)
            for pooling in self.pooling:
                check_choice("--pooling", pooling, POOLINGS)
            for zscore in self.zscore:
                check_choice("--zscore", zscore, ZSCORE_MODES)
            check_choice("--zscore-fit", self.zscore_fit, ZSCORE_FITS)
            check_choice("--engine", self.engine, ENGINES)
            for weight in self.weights:
                check_weight(weight)
        except ValueError as error:
            raise ScoreError(str(error)) from None
        for option, given in self._selections():
            if given is not None and not given:  # never read as "the default"
                raise ScoreError(f"{option} names nothing: name at least one, or leave it out")
        if SUM in self.methods and not self.weights and not self.auto_weight:
            raise ScoreError(f"{SUM} needs a --weight (a number, or {AUTO})")
        if self.workers < 1:
            raise ScoreError(f"--workers {self.workers}: use 1 or more")
        if self.chunk_rows < 1:
            raise ScoreError(f"--chunk-rows {self.chunk_rows}: use 1 or more")
        self._check_sides()
        # results inside the cache it reads (or the default one) would be taken for cache data
        check_outside_cache(self.output, option="--output", caches=(self.cache_dir, cache_root()))

    @property
    def sides(self) -> SidePrompts[str] | None:
        """The sides' prompt ids where they differ (a retrieval task's unit of two entries)."""
        pair = side_prompts(
            self.prompts, query=self.query_prompt, document=self.document_prompt, plain="none"
        )
        if pair is None:
            return None
        ids = SidePrompts(prompt_id(pair.query), prompt_id(pair.document))
        return ids if ids.query != ids.document else None

    def _check_sides(self) -> None:
        try:
            pair = self.sides
        except SidesError as error:
            raise ScoreError(str(error)) from None
        if pair is not None and self.zscore_fit == "task":
            raise ScoreError(
                "--zscore-fit task fits on every row of an entry, and a side's entry may hold "
                "the other side's texts too: with --query-prompt/--document-prompt use "
                "--zscore-fit split"
            )

    def _selections(self) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
        """Each selection by its option: None (tasks, types) means every one, empty nothing."""
        return (
            ("--tasks", self.tasks),
            ("--task-types", self.task_types),
            ("--prompt", self.prompts),
            ("--method", self.methods),
            ("--rw", self.rw),
            ("--pooling", self.pooling),
            ("--layers", self.layers),
            ("--hs-layers", self.hs_layers),
            ("--zscore", self.zscore),
            ("--split", self.splits),
        )


def default(name: str) -> Any:
    """The default of one `ScoreConfig` field (what the CLI offers when an option is left out)."""
    for f in dataclasses.fields(ScoreConfig):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            break
    raise KeyError(f"ScoreConfig has no default for {name!r}")
