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
