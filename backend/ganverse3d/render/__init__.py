"""The differentiable DIB-R renderer, in pure PyTorch (CPU and CUDA alike).

Small orthogonal ops: :func:`rasterize` (z-buffer -> :class:`Fragments`), :func:`interpolate`
(barycentric, differentiable), :func:`sample_texture`, :class:`Lighting`, :func:`soft_silhouette`,
composed by :func:`render_mesh`. Knows nothing of networks.
"""

from .rasterize import Fragments, interpolate, rasterize, scatter_to_image
from .renderer import RenderOutput, render_mesh
from .shading import Lighting, sample_texture
from .soft_mask import soft_silhouette

__all__ = ["Fragments", "Lighting", "RenderOutput", "interpolate", "rasterize", "render_mesh", "sample_texture",
           "scatter_to_image", "soft_silhouette"]
