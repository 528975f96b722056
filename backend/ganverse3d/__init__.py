"""GANverse3D: StyleGAN as a multi-view data generator, a DIB-R inverse-graphics network, StyleGAN-R and parts.

Conventions (object space, cameras, image and mesh shapes) are fixed in docs/ARCHITECTURE.md and pinned by tests.
"""

__version__ = "0.1.0"
