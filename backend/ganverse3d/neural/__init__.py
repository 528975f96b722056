"""StyleGAN-R (paper Sec. 3.3): a mapping network from camera, shape, texture and background into a StyleGAN2's
W*, trained by a warm-up against the generator's own codes and fine-tuned with it through the inverse-graphics
network (``train``); ``networks`` holds the model, ``view_dims`` the choice of the view dimensions the camera
drives."""

from .networks import MappingNetwork, StyleGANR

__all__ = ["MappingNetwork", "StyleGANR"]
