"""The add-on's reading of the worker's mesh.json (scene_build): the optional wheel colours."""

import json

import pytest

from ganverse3d_blender import scene_build

TRIANGLE = {"vertices": [[0, 0, 0], [1, 0, 0], [0, 1, 0]], "faces": [[0, 1, 2]], "uvs": [[0, 0], [1, 0], [0, 1]]}


def read(tmp_path, **keys):
    path = tmp_path / "mesh.json"
    path.write_text(json.dumps({**TRIANGLE, **keys}))
    return scene_build._read_mesh(str(path))


def test_wheel_colours_are_optional_and_read_as_opaque_linear_colours(tmp_path):
    assert read(tmp_path).wheel_colours == {}
    assert read(tmp_path, wheel_colours={"rim": [0.5, 0.25, 0.0]}).wheel_colours == {"rim": (0.5, 0.25, 0.0, 1.0)}


@pytest.mark.parametrize("colours", [{"paint": [0.1, 0.1, 0.1]}, {"rim": [0.1, 0.1]}, {"tyre": [0.1, 2.0, 0.1]},
                                     {"tyre": "black"}, [0.1, 0.1, 0.1], {"rim": None}])
def test_bad_wheel_colours_are_one_sentence(tmp_path, colours):
    with pytest.raises(scene_build.BuildError) as error:
        read(tmp_path, wheel_colours=colours)
    message = str(error.value)
    assert message.startswith("The backend's mesh ") and message.endswith(" from 0 to 1.") and message.count(". ") == 0
