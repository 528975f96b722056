"""Add-on preferences (which Python runs the backend, which model, which device) and the status lines."""

import sys

import bpy

from . import session


class GANVERSE3D_PG_status(bpy.types.PropertyGroup):
    """Per-session status lines (on the window manager, so they are neither saved nor undone)."""

    backend: bpy.props.StringProperty(name="Backend", description="Result of the last backend check")
    import_status: bpy.props.StringProperty(name="Status", description="Progress, result or error of the last import")


class GANVERSE3D_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python: bpy.props.StringProperty(
        name="Backend Python",
        description="Python interpreter that has the ganverse3d package installed (e.g. ~/ganverse3d-env/bin/python); "
                    "empty = Blender's own Python",
        subtype="FILE_PATH",
    )
    model: bpy.props.StringProperty(
        name="Model",
        description="Inverse-graphics model bundle (.safetensors), or 'gan' for the embedded model trained the "
                    "paper's way on GAN images; empty = the embedded oracle, trained on renders with exact cameras",
        subtype="FILE_PATH",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        items=(("AUTO", "Auto", "CUDA when the backend sees a GPU, else the CPU"),
               ("CPU", "CPU", "Always the CPU"),
               ("CUDA", "CUDA", "An NVIDIA GPU (fails clearly if the backend has none)")),
        default="AUTO",
    )
    timeout: bpy.props.IntProperty(
        name="Timeout (s)",
        description="Seconds an import may take before the backend is considered hung and stopped",
        default=300, min=1, soft_max=1800,
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        column = layout.column()
        column.prop(self, "python")
        if not self.python:
            column.label(text=f"Using Blender's own Python: {sys.executable}", icon="INFO")
        column.prop(self, "model")
        column.prop(self, "device")
        column.prop(self, "timeout")
        row = layout.row()
        row.operator("ganverse3d.check_backend", icon="CHECKMARK")
        status = context.window_manager.ganverse3d.backend
        if status:
            layout.label(text=status)
        if session.worker_busy():
            layout.label(text="The backend is busy.", icon="TIME")
