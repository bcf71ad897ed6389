"""The one progress bar of an extraction run, whichever engine runs it.

A run covers many (task, prompt) pairs; one bar per pair scrolled a run of 19 tasks x 2 prompts
into 38 lines. The run's bar counts texts still to extract: each pair adds its texts when it
is planned (texts already cached are never counted), and the postfix names the pair in work and
the run's throughput in real tokens per second.
"""

from __future__ import annotations

from types import TracebackType

from tqdm.auto import tqdm


class RunBar:
    """One bar for a whole run: `begin` adds a pair's texts, `advance` counts finished ones."""

    def __init__(self, *, enabled: bool, desc: str = "extract") -> None:
        self._bar = tqdm(total=0, desc=desc, unit="text", disable=not enabled)
        self._tokens = 0
        self._label = ""

    def begin(self, label: str, texts: int) -> None:
        """A (task, prompt) named `label` starts with `texts` texts to extract."""
        self._label = label
        self._bar.total += texts
        self._bar.set_postfix_str(label, refresh=False)
        self._bar.refresh()

    def advance(self, texts: int, tokens: int, *, label: str | None = None) -> None:
        """`texts` texts (`tokens` real tokens) written, of `label` (default: the last begun)."""
        self._tokens += tokens
        self._bar.update(texts)
        elapsed = max(self._bar.format_dict["elapsed"], 1e-9)
        pair = self._label if label is None else label
        self._bar.set_postfix_str(f"{pair}, {self._tokens / elapsed:,.0f} tok/s", refresh=False)

    def close(self) -> None:
        """End the bar's line on the terminal."""
        self._bar.close()

    def __enter__(self) -> RunBar:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
