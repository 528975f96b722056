"""Run by ``blender --background --python`` from test_addon_in_blender.py: enable the add-on from the repository
as a legacy add-on, import a photo through its operator with the given backend Python, and print one JSON line
describing what the import created (the test asserts on it): the car and the camera, and the names of the
wheel objects (a backend with a part branch).

    blender -b --python tests/blender_headless/import_in_blender.py -- BACKEND_PYTHON PHOTO
"""

import json
import sys
from pathlib import Path

import addon_utils
import bpy

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    backend_python, photo = sys.argv[sys.argv.index("--") + 1:]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sys.path.insert(0, str(ROOT / "blender_addon"))
    addon_utils.enable("ganverse3d_blender", default_set=True, handle_error=None)
    bpy.context.preferences.addons["ganverse3d_blender"].preferences.python = backend_python
    before = {obj.name for obj in bpy.data.objects}
    try:
        bpy.ops.ganverse3d.import_photo(filepath=photo, length=4.0, texture_size="512")
        error = None
    except RuntimeError as failure:
        error = str(failure).strip()
    created = [bpy.data.objects[name] for name in sorted({obj.name for obj in bpy.data.objects} - before)]
    wheels = sorted(obj.name for obj in created if "ganverse3d_wheel" in obj)
    created = [obj for obj in created if "ganverse3d_wheel" not in obj]
    render = bpy.context.scene.render
    report = {"error": error, "blender": bpy.app.version_string, "objects": [], "wheels": wheels,
              "render": [render.resolution_x, render.resolution_y],
              "collections": {c.name: sorted(c.objects.keys()) for c in bpy.data.collections}}
    for obj in created:
        entry = {"name": obj.name, "type": obj.type}
        if obj.type == "MESH":
            zs = [v.co.z for v in obj.data.vertices]
            ys = [v.co.y for v in obj.data.vertices]
            images = [node.image for node in obj.data.materials[0].node_tree.nodes if node.type == "TEX_IMAGE"]
            entry.update(vertices=len(obj.data.vertices), faces=len(obj.data.polygons),
                         uv_layers=len(obj.data.uv_layers), smooth=all(p.use_smooth for p in obj.data.polygons),
                         min_z=min(zs), length_y=max(ys) - min(ys),
                         packed_textures=sum(image.packed_file is not None for image in images),
                         textures=[image.name for image in images],
                         texture_sizes=[list(image.size) for image in images],
                         materials=[material.name for material in obj.data.materials])
        if obj.type == "CAMERA":
            entry.update(scene_camera=bpy.context.scene.camera == obj,
                         backgrounds=len(obj.data.background_images))
        report["objects"].append(entry)
    print("RESULT " + json.dumps(report))
    sys.stdout.flush()
    sys.exit(0)


main()
