"""Multi-view datasets: the on-disk format, view annotation, synthesis from a generator, segmenters.

* :mod:`.format` - the folder format and :class:`MultiViewDataset`, the reader.
* :mod:`.views` - candidate view codes, their contact sheet and the annotation file.
* :mod:`.segment` - segmenters behind one interface (world U-Net, torchvision Mask R-CNN, detectron2).
* :mod:`.train_segmenter` - training and scoring segmenters on world renders.
* :mod:`.synth` - GAN multi-view synthesis with the paper's filter; :mod:`.world_multiview` - the world oracle.
"""

from .format import FORMAT, FORMAT_VERSION, MultiViewDataset, ViewSpec, cameras_from_batch, item_stem, read_manifest

__all__ = ["FORMAT", "FORMAT_VERSION", "MultiViewDataset", "ViewSpec", "cameras_from_batch", "item_stem",
           "read_manifest"]
