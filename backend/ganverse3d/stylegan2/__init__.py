"""StyleGAN2: the networks (``networks``) and a loader for official and our own weights (``load``)."""

from .load import load_generator, save_generator
from .networks import Discriminator, Generator

__all__ = ["Discriminator", "Generator", "load_generator", "save_generator"]
