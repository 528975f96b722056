"""The inverse-graphics network (paper Sec. 3.2): model, losses, learnable view cameras, training, evaluation.

* :mod:`.model` - :class:`InverseGraphicsNet`: image + mask -> mesh on the template sphere, UV texture, camera.
* :mod:`.losses` - Eq. 1 terms (IoU, colour, perceptual, Laplacian, flatten, move) and the Eq. 2 sum.
* :mod:`.cameras` - :class:`ViewCameras`: one learnable camera per annotated view.
* :mod:`.camera_search` - the camera estimate's azimuth refined against the object's silhouette.
* :mod:`.train` - the resumable training loop behind ``ganverse3d inverse train``.
* :mod:`.evaluate` - re-projected IoU, novel-view IoU, Chamfer, azimuth error, turntable sheets.
"""

from .cameras import ViewCameras
from .model import InverseGraphicsNet, Prediction

__all__ = ["InverseGraphicsNet", "Prediction", "ViewCameras"]
