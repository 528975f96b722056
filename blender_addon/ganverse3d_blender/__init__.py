"""GANverse3D for Blender: import a textured car mesh from one photo, with a camera that matches the photo, and
preview it re-rendered by StyleGAN-R from the scene camera (the Neural Preview).

The heavy lifting (PyTorch, the inverse-graphics network) runs in a separate backend worker process
(``python -m ganverse3d.worker``, see ``worker_client``); this add-on uses bpy and the standard library only,
so it installs into any Blender 4.2+ without touching Blender's Python. It is both an extension
(``blender_manifest.toml``) and a legacy add-on (``bl_info``); all imports are relative, so it works under
either package name (``bl_ext.<repository>.ganverse3d`` or ``ganverse3d_blender``).
"""

bl_info = {
    "name": "GANverse3D",
    "description": "Import a textured 3D car from one photo, with a matching camera",
    "author": "GANverse3D for Blender contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D Viewport > Sidebar > GANverse3D",
    "category": "Import-Export",
}

import bpy

from . import operators, panel, preferences, preview, session, status

CLASSES = (
    panel.GANVERSE3D_PG_preview_settings,
    panel.GANVERSE3D_PG_import_settings,
    status.GANVERSE3D_PG_status,
    preferences.GANVERSE3D_AddonPreferences,
    operators.GANVERSE3D_OT_check_backend,
    operators.GANVERSE3D_OT_import_photo,
    operators.GANVERSE3D_OT_bake_wheel_rotation,
    operators.GANVERSE3D_OT_neural_preview,
    panel.GANVERSE3D_PT_import,
    panel.GANVERSE3D_PT_car_rig,
    panel.GANVERSE3D_PT_neural_preview,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    # Import options travel with the .blend; status lines are per session, so they live on the window manager.
    bpy.types.Scene.ganverse3d = bpy.props.PointerProperty(type=panel.GANVERSE3D_PG_import_settings)
    bpy.types.WindowManager.ganverse3d = bpy.props.PointerProperty(type=status.GANVERSE3D_PG_status)
    bpy.app.handlers.load_pre.append(preview.stop_on_load)


def unregister():
    bpy.app.handlers.load_pre.remove(preview.stop_on_load)
    preview.shutdown()
    session.close_worker()
    del bpy.types.WindowManager.ganverse3d
    del bpy.types.Scene.ganverse3d
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
