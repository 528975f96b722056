"""The "GANverse3D" tab of the 3D viewport's sidebar: photo, mask, options, Import button, status line; below
it the Neural Preview: car, background, swaps, the toggle and its status line.

The field names (Photo, Mask, Length, Quality, Texture Size, Background) are the words the backend's error
messages use.
"""

import bpy

from . import operators, part_materials, preview, status, wheels


def _is_imported_car(settings, obj) -> bool:
    return preview.has_reconstruction(obj)


def _is_other_imported_car(settings, obj) -> bool:
    return preview.has_reconstruction(obj) and obj != settings.car


class GANVERSE3D_PG_preview_settings(bpy.types.PropertyGroup):
    """The Neural Preview's options, saved with the scene."""

    car: bpy.props.PointerProperty(name="Car", type=bpy.types.Object, poll=_is_imported_car,
                                   description="The imported car that StyleGAN-R renders from the scene camera; "
                                               "empty = the active object when the preview starts")
    background: bpy.props.EnumProperty(
        name="Background",
        items=(("CAR", "Car's Photo", "The car's own photo around it, the car masked out"),
               ("FILE", "Photo File", "Another photo: its centred square")),
        default="CAR")
    background_photo: bpy.props.StringProperty(name="Background Photo", subtype="FILE_PATH",
                                               description="The photo behind the car when Background is Photo File")
    swap_with: bpy.props.PointerProperty(name="Swap With", type=bpy.types.Object, poll=_is_other_imported_car,
                                         description="Another imported car whose parts the preview's car takes")
    swap_shape: bpy.props.BoolProperty(name="Shape", description="Render the car with the other car's shape")
    swap_texture: bpy.props.BoolProperty(name="Texture", description="Render the car with the other car's texture")
    swap_background: bpy.props.BoolProperty(name="Background",
                                            description="Render the car on the other car's background")


class GANVERSE3D_PG_import_settings(bpy.types.PropertyGroup):
    """The panel's import options, saved with the scene (and the Neural Preview's, in ``preview``)."""

    photo: operators.PHOTO
    mask: operators.MASK
    length: operators.LENGTH
    quality: operators.QUALITY
    texture_size: operators.TEXTURE_SIZE
    create_camera: operators.CREATE_CAMERA
    photo_background: operators.PHOTO_BACKGROUND
    part_materials: operators.PART_MATERIALS
    separate_wheels: operators.SEPARATE_WHEELS
    preview: bpy.props.PointerProperty(type=GANVERSE3D_PG_preview_settings)


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
        layout.prop(settings, "part_materials")
        layout.prop(settings, "separate_wheels")
        button = layout.operator("ganverse3d.import_photo", text="Import", icon="IMPORT")
        for setting, option in operators.IMPORT_OPTIONS.items():
            setattr(button, option, getattr(settings, setting))
        status.draw(layout, context, "import_status")


class GANVERSE3D_PT_car_rig(bpy.types.Panel):
    """The selected car's (or wheel's car's) Lights, Speed, Distance and Steer, and Bake Wheel Rotation."""

    bl_idname = "GANVERSE3D_PT_car_rig"
    bl_label = "Car"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "GANverse3D"

    @classmethod
    def poll(cls, context):
        car = context.active_object
        return wheels.rigged_car(car) is not None or (car is not None and part_materials.LIGHTS_PROPERTY in car)

    def draw(self, context):
        car = wheels.rigged_car(context.active_object) or context.active_object
        layout = self.layout
        layout.label(text=car.name, icon="AUTO")
        for name in (part_materials.LIGHTS_PROPERTY, *wheels.RIG_PROPERTIES):
            if name in car:
                layout.prop(car, f'["{name}"]', text=name)
        if wheels.rigged_car(car) is not None:
            layout.operator("ganverse3d.bake_wheel_rotation", icon="ANIM")


class GANVERSE3D_PT_neural_preview(bpy.types.Panel):
    bl_idname = "GANVERSE3D_PT_neural_preview"
    bl_label = "Neural Preview"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "GANverse3D"

    def draw(self, context):
        settings = context.scene.ganverse3d.preview
        layout = self.layout
        layout.prop(settings, "car")
        layout.prop(settings, "background")
        if settings.background == "FILE":
            layout.prop(settings, "background_photo")
        layout.prop(settings, "swap_with")
        row = layout.row(align=True)
        row.active = settings.swap_with is not None
        for part in preview.SWAP_PARTS:
            row.prop(settings, f"swap_{part}", toggle=True)
        on = preview.running()
        layout.operator("ganverse3d.neural_preview", text="Stop Neural Preview" if on else "Neural Preview",
                        icon="PAUSE" if on else "PLAY", depress=on)
        status.draw(layout, context, preview.STATUS_LINE)
