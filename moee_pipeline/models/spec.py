"""What model to load and how, without importing torch or transformers.

The CLI and `run_extract` build a `ModelSpec` and check the task data before anything heavy is
imported, so the texts can be recorded in another process while torch loads. Only resolving
`device="auto"` needs torch (is a GPU visible?), and imports it then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moee_pipeline.errors import MoeeError
from moee_pipeline.models.names import DTYPE_NAMES, Quantization

if TYPE_CHECKING:
    import torch


class ModelLoadError(MoeeError, RuntimeError):
    """The model cannot be loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """What to load and how. `None` means: pick the default for the device."""

    model: str
    revision: str | None = None
    quantization: Quantization | None = None
    dtype: str | None = None
    device: str = "auto"
    trust_remote_code: bool = False
    device_map: str | None = None  # "auto": spread over the visible GPUs (models/placement.py)
    max_memory: tuple[tuple[str, str], ...] = ()  # with device_map: ("gpu"|"cpu"|"0", "20GiB")

    def hub_kwargs(self) -> dict[str, Any]:
        """What every transformers `from_pretrained` of this model is given."""
        return {"revision": self.revision, "trust_remote_code": self.trust_remote_code}

    def resolved_device(self) -> torch.device:
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ModelLoadError(
                f"unknown --device {self.device!r}: use auto, cpu, cuda or cuda:N"
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"--device {self.device} asked for, but no CUDA GPU is visible")
        return device

    def resolved_quantization(self) -> Quantization:
        if self.quantization is not None:
            return self.quantization
        return "nf4" if self.resolved_device().type == "cuda" else "none"

    def resolved_dtype(self) -> str:
        if self.dtype is not None:
            if self.dtype not in DTYPE_NAMES:
                raise ModelLoadError(
                    f"unknown --dtype {self.dtype!r}; use one of {list(DTYPE_NAMES)}"
                )
            return self.dtype
        return "bfloat16" if self.resolved_device().type == "cuda" else "float32"
