"""The procedural car world: parametric textured cars with part labels, scenes, ground-truth renders.

* :mod:`.cars` - :class:`CarSpec` / :class:`Car`, :func:`sample_car`, :func:`build_car`, one shared topology.
* :mod:`.scene` - cameras, light and backgrounds per item, :func:`render_world` / :func:`render_items`.
* :mod:`.dataset` - the on-disk dataset written by ``ganverse3d world render``.
"""

from .cars import (BODY_TYPES, PART_LABELS, TEXTURE_SIZE, UNIT_SPHERE_RADIUS, Car, CarSpec, batch_cars, build_car,
                   car_faces, sample_car, sample_car_spec)
from .dataset import write_world_dataset
from .scene import SceneSpec, WorldRender, item_rng, render_items, render_world, sample_item, sample_scene_spec

__all__ = [
    "BODY_TYPES", "PART_LABELS", "TEXTURE_SIZE", "UNIT_SPHERE_RADIUS", "Car", "CarSpec", "SceneSpec", "WorldRender",
    "batch_cars", "build_car", "car_faces", "item_rng", "render_items", "render_world", "sample_car",
    "sample_car_spec", "sample_item", "sample_scene_spec", "write_world_dataset",
]
