"""Shared test settings.

The tests use tiny tensors, where a second intra-op thread gains nothing; and when the machine is shared
(another job, or CI neighbours), PyTorch's spinning OpenMP threads slow each other down by 10x or more.
One thread keeps the suite fast and its timing predictable.
"""

import torch

torch.set_num_threads(1)
