"""Add-on preferences: which Python runs the backend, which models, which device, how long an import may take.

The setting names (Backend Python, Model, Neural Model, Device, Timeout) are the words the backend's error
messages use.
"""

import sys

import bpy

from . import session, status


def _backend_setting_changed(self, context):
    """Clear what the status lines say about the backend as it was set up before.

    The last check describes the old settings, and the last error may be the one this change fixes; the next
    request starts the backend with the new settings (see ``session.worker_client``).
    """
    status.show(context, "backend", "")
    if status.failed(context, "import_status"):
        status.show(context, "import_status", "")


class GANVERSE3D_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python: bpy.props.StringProperty(
        name="Backend Python",
        description="Python interpreter that has the ganverse3d package installed (e.g. ~/ganverse3d-env/bin/python); "
                    "empty = Blender's own Python",
        subtype="FILE_PATH",
        update=_backend_setting_changed,
    )
    model: bpy.props.StringProperty(
        name="Model",
        description="Inverse-graphics model bundle (.safetensors), or 'gan' for the embedded model trained the "
                    "paper's way on GAN images; empty = the embedded oracle, trained on renders with exact cameras",
        subtype="FILE_PATH",
        update=_backend_setting_changed,
    )
    # Sent with each preview request, so changing it needs no new worker (and keeps the cars the worker holds).
    neural_model: bpy.props.StringProperty(
        name="Neural Model",
        description="StyleGAN-R bundle (.safetensors) that renders the Neural Preview; empty = the backend's "
                    "shipped one",
        subtype="FILE_PATH",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        items=(("AUTO", "Auto", "CUDA when the backend sees a GPU, else the CPU"),
               ("CPU", "CPU", "Always the CPU"),
               ("CUDA", "CUDA", "An NVIDIA GPU (fails clearly if the backend has none)")),
        default="AUTO",
        update=_backend_setting_changed,
    )
    timeout: bpy.props.IntProperty(
        name="Timeout",
        description="Seconds an import may take before the backend is considered hung and stopped",
        default=300, min=1, soft_max=1800,
        update=_backend_setting_changed,
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        column = layout.column()
        column.prop(self, "python")
        if not self.python:
            column.label(text=f"Using Blender's own Python: {sys.executable}", icon="INFO")
        column.prop(self, "model")
        column.prop(self, "neural_model")
        column.prop(self, "device")
        column.prop(self, "timeout")
        layout.operator("ganverse3d.check_backend", icon="CHECKMARK")
        status.draw(layout, context, "backend")
        if session.worker_busy():
            layout.label(text="The backend is busy.", icon="TIME")
