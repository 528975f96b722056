"""Device selection shared by every entry point."""

from __future__ import annotations

import torch

from .errors import InputError, setting


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without CUDA is a user error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"CUDA was asked for but this PyTorch sees no CUDA device; set {setting('device')} to cpu or auto.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"Unknown {setting('device')} {name!r}; use auto, cpu or cuda.") from None


def to_device(tensor: torch.Tensor, device: str | torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``tensor`` on ``device`` (as ``dtype``, when given): a batch's way from host memory to the training device.

    From the CPU to CUDA it goes through page-locked memory without blocking, so the host queues the step's
    kernels while the copy runs, and converts on the device (a uint8 batch crosses at a quarter of float32's
    size); anywhere else it is ``tensor.to(device, dtype)``.
    """
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device, dtype)
    return tensor.pin_memory().to(device, non_blocking=True).to(dtype)


# A training step's precision (`--precision` of `gan train` and `neural train`).
PRECISIONS = ("float32", "bfloat16")


def autocast(device: torch.device, precision: str):
    """The context StyleGAN's networks train in: bfloat16 autocast on ``device``, or plain float32 (``precision``,
    one of :data:`PRECISIONS`). Callers read the results back as float32 before their losses."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
