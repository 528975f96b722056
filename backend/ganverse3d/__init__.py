"""GANverse3D: StyleGAN as a multi-view data generator and a DIB-R inverse-graphics network (StyleGAN-R planned).

Conventions (object space, cameras, image and mesh shapes) are fixed in docs/ARCHITECTURE.md and pinned by tests.
"""

__version__ = "0.1.0"
