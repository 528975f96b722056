"""Multi-view datasets: the on-disk format, view annotation, synthesis from a generator, segmenters."""

from .format import FORMAT, FORMAT_VERSION, MultiViewDataset, ViewSpec, cameras_from_batch, item_stem, read_manifest

__all__ = ["FORMAT", "FORMAT_VERSION", "MultiViewDataset", "ViewSpec", "cameras_from_batch", "item_stem",
           "read_manifest"]
