"""The "GANverse3D" tab of the 3D viewport's sidebar: photo, mask, options, Import button, status line.

The field names (Photo, Mask, Length, Quality, Texture Size) are the words the backend's error messages use.
"""

import bpy

from . import operators, status


class GANVERSE3D_PG_import_settings(bpy.types.PropertyGroup):
    """The panel's import options, saved with the scene."""

    photo: operators.PHOTO
    mask: operators.MASK
    length: operators.LENGTH
    quality: operators.QUALITY
    texture_size: operators.TEXTURE_SIZE
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
        layout.prop(settings, "photo")
        layout.prop(settings, "mask")
        layout.prop(settings, "length")
        layout.prop(settings, "quality")
        layout.prop(settings, "texture_size")
        layout.prop(settings, "create_camera")
        row = layout.row()
        row.active = settings.create_camera
        row.prop(settings, "photo_background")
        button = layout.operator("ganverse3d.import_photo", text="Import", icon="IMPORT")
        for setting, option in operators.IMPORT_OPTIONS.items():
            setattr(button, option, getattr(settings, setting))
        status.draw(layout, context, "import_status")
