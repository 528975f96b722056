"""The "GANverse3D" tab of the 3D viewport's sidebar: photo, options, Import button, status line."""

import bpy

from . import operators


class GANVERSE3D_PG_import_settings(bpy.types.PropertyGroup):
    """The panel's import options, saved with the scene."""

    photo: operators.PHOTO
    length: operators.LENGTH
    create_camera: operators.CREATE_CAMERA
    photo_background: operators.PHOTO_BACKGROUND


class GANVERSE3D_PT_import(bpy.types.Panel):
    bl_idname = "GANVERSE3D_PT_import"
    bl_label = "Import Car from Photo"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "GANverse3D"

    def draw(self, context):
        settings = context.scene.ganverse3d
        layout = self.layout
        layout.prop(settings, "photo", text="")
        layout.prop(settings, "length")
        layout.prop(settings, "create_camera")
        row = layout.row()
        row.active = settings.create_camera
        row.prop(settings, "photo_background")
        button = layout.operator("ganverse3d.import_photo", text="Import", icon="IMPORT")
        button.filepath = settings.photo
        button.length = settings.length
        button.create_camera = settings.create_camera
        button.photo_background = settings.photo_background
        status = context.window_manager.ganverse3d.import_status
        if status:
            layout.label(text=status)
