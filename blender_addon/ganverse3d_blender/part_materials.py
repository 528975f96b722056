"""The materials of a part-aware car: painted body, tinted glass, lit head- and taillights, plate, tyres, rims.

Each is a Principled BSDF. Blender renamed several of its inputs in 4.0 (Blender 3.4's "Clearcoat",
"Transmission" and "Emission" are 4.0's and 5.0's "Coat Weight", "Transmission Weight" and "Emission Color"),
so every input that is not named alike in both goes through :func:`principled_input`, which knows both names.
The lights' emission strengths follow the car's custom property "Lights" (0..1) through drivers written as
simple expressions, which Blender evaluates without running Python (so they work with auto-run scripts off).
"""

import bpy

# Principled BSDF inputs by role -> their names, newest first (Blender 4.0+, then 3.x).
PRINCIPLED_INPUT_NAMES = {
    "coat": ("Coat Weight", "Clearcoat"),
    "coat_roughness": ("Coat Roughness", "Clearcoat Roughness"),
    "transmission": ("Transmission Weight", "Transmission"),
    "emission_color": ("Emission Color", "Emission"),
    "emission_strength": ("Emission Strength",),
}
# Linear RGB colours and settings of each look (the body's base colour is the photo texture instead).
DARK_RUBBER = (0.015, 0.015, 0.015, 1.0)
LOOKS = {
    "body": {"Roughness": 0.3, "coat": 0.8, "coat_roughness": 0.05},
    "window": {"Base Color": (0.03, 0.035, 0.04, 1.0), "Roughness": 0.02, "transmission": 1.0, "IOR": 1.45},
    "headlight": {"Base Color": (1.0, 1.0, 1.0, 1.0), "Roughness": 0.1, "emission_color": (1.0, 0.95, 0.85, 1.0)},
    "taillight": {"Base Color": (0.6, 0.01, 0.01, 1.0), "Roughness": 0.2, "emission_color": (1.0, 0.02, 0.01, 1.0)},
    "plate": {"Base Color": (0.85, 0.85, 0.8, 1.0), "Roughness": 0.45},
    "tyre": {"Base Color": DARK_RUBBER, "Roughness": 0.85},
    "rim": {"Base Color": (0.8, 0.8, 0.82, 1.0), "Metallic": 1.0, "Roughness": 0.25},
}
# Emission strength of each light at Lights = 1 (Blender's W/m² of the Principled BSDF's emission).
LIGHT_STRENGTHS = {"headlight": 20.0, "taillight": 8.0}
LIGHTS_PROPERTY = "Lights"


def principled_input(shader, role: str):
    """The input of the Principled BSDF node ``shader`` for ``role`` (a key of PRINCIPLED_INPUT_NAMES or an input
    named alike in every Blender version, e.g. "Roughness"), whichever Blender this is."""
    for name in PRINCIPLED_INPUT_NAMES.get(role, (role,)):
        socket = shader.inputs.get(name)
        if socket is not None:
            return socket
    raise KeyError(f"This Blender's Principled BSDF has no input for {role!r}.")


def principled_material(name: str, created: list):
    """A new material with nodes (Blender < 5 creates materials without) -> (material, its Principled BSDF)."""
    material = bpy.data.materials.new(name)
    created.append(material)
    if material.node_tree is None:
        material.use_nodes = True
    shader = next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
    return material, shader


def link_texture(material, shader, texture) -> None:
    """Feed ``texture`` (through the mesh's UVs) into the shader's base colour."""
    image_node = material.node_tree.nodes.new("ShaderNodeTexImage")
    image_node.image = texture
    image_node.location = (shader.location.x - 400, shader.location.y)
    material.node_tree.links.new(image_node.outputs["Color"], shader.inputs["Base Color"])


def look_material(name: str, look: str, created: list, texture=None, base_colour=None):
    """A material of ``look`` (a key of LOOKS) named ``name``; the body's look takes ``texture`` as its colour, and
    ``base_colour`` (linear RGBA, e.g. a tyre's as the photo shows it) replaces the look's own."""
    material, shader = principled_material(name, created)
    settings = LOOKS[look] if base_colour is None else {**LOOKS[look], "Base Color": tuple(base_colour)}
    for role, value in settings.items():
        principled_input(shader, role).default_value = value
    if texture is not None:
        link_texture(material, shader, texture)
    if look == "window":  # Eevee shows transmission only through a blended surface (Cycles ignores this)
        if hasattr(material, "surface_render_method"):
            material.surface_render_method = "BLENDED"
        else:
            material.blend_method = "BLEND"
    return material


def shine_outwards_only(material, shader) -> None:
    """A lamp's faces seen from behind by any ray but the camera's get black diffuse instead of the light: the mesh
    is a closed shell, so its lamps' back faces would light the cabin, which the glass then shows. Camera rays keep
    the light on both sides, since a reconstructed mesh folds over here and there and its folded faces face
    inwards."""
    nodes, links = material.node_tree.nodes, material.node_tree.links
    output = next(node for node in nodes if node.type == "OUTPUT_MATERIAL")
    geometry, light_path, not_camera, hidden, black, mix = (nodes.new(kind) for kind in (
        "ShaderNodeNewGeometry", "ShaderNodeLightPath", "ShaderNodeMath", "ShaderNodeMath", "ShaderNodeBsdfDiffuse",
        "ShaderNodeMixShader"))
    not_camera.operation, hidden.operation = "SUBTRACT", "MULTIPLY"
    not_camera.inputs[0].default_value = 1.0
    links.new(light_path.outputs["Is Camera Ray"], not_camera.inputs[1])
    links.new(geometry.outputs["Backfacing"], hidden.inputs[0])
    links.new(not_camera.outputs["Value"], hidden.inputs[1])
    black.inputs["Color"].default_value = (0.0, 0.0, 0.0, 1.0)
    links.new(hidden.outputs["Value"], mix.inputs["Fac"])
    links.new(shader.outputs["BSDF"], mix.inputs[1])
    links.new(black.outputs["BSDF"], mix.inputs[2])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])


def drive_light(material, car, look: str) -> None:
    """Emission strength of ``material`` = car["Lights"] x LIGHT_STRENGTHS[look], by a simple-expression driver."""
    shader = next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
    driver = principled_input(shader, "emission_strength").driver_add("default_value").driver
    driver.type = "SCRIPTED"
    variable = driver.variables.new()
    variable.name = "lights"
    variable.targets[0].id = car
    variable.targets[0].data_path = f'["{LIGHTS_PROPERTY}"]'
    driver.expression = f"lights * {LIGHT_STRENGTHS[look]}"


def part_materials(car, part_names: list, texture, tyre, created: list) -> dict:
    """One material per part, named "<car>_<part>" -> {part name: material}; lights get their drivers.

    The body's faces that the backend still labels "wheel" (it pulls the wheel blobs in, so usually none) take
    the wheels' ``tyre`` material; a part name without a look of its own (a newer backend's) the plate's look.
    """
    materials = {}
    for part in part_names:
        if part == "wheel":
            materials[part] = tyre
            continue
        look = part if part in LOOKS else "plate"
        material = look_material(f"{car.name}_{part}", look, created, texture if look == "body" else None)
        if look in LIGHT_STRENGTHS:
            drive_light(material, car, look)
            shine_outwards_only(material, next(node for node in material.node_tree.nodes
                                               if node.type == "BSDF_PRINCIPLED"))
        materials[part] = material
    return materials


def add_lights_property(car) -> None:
    car[LIGHTS_PROPERTY] = 1.0
    car.id_properties_ui(LIGHTS_PROPERTY).update(
        subtype="FACTOR", min=0.0, max=1.0, default=1.0,
        description="Head- and taillights: 0 off, 1 fully on (drives their emission; keyframe it to flash them)")
