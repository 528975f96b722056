"""Device selection and the way of a batch to the training device (ganverse3d.devices)."""

from __future__ import annotations

import pytest
import torch

from ganverse3d.devices import to_device

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_to_device_on_the_cpu_is_a_plain_to():
    batch = torch.arange(6, dtype=torch.uint8)
    assert to_device(batch, "cpu") is batch
    moved = to_device(batch, torch.device("cpu"), torch.float32)
    assert moved.dtype == torch.float32 and torch.equal(moved, batch.float())


@needs_cuda
def test_to_device_cuda_converts_on_the_device_and_owns_its_copy():
    batch = torch.arange(256, dtype=torch.uint8).repeat(4096)
    moved = to_device(batch, "cuda", torch.float32)
    batch.zero_()  # the copy may still be running: it must read a pinned copy of its own, not this storage
    assert moved.device.type == "cuda" and moved.dtype == torch.float32
    assert torch.equal(moved.cpu(), torch.arange(256, dtype=torch.float32).repeat(4096))
