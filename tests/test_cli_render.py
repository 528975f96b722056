"""`ganverse3d render`: silhouettes land where the camera puts them, and bad input is one sentence, exit 2."""

import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d import api
from ganverse3d.cli import main
from ganverse3d.errors import InputError
from ganverse3d.export import TexturedMesh, save_mesh
from ganverse3d.files import png_bytes
from ganverse3d.geometry import Camera

HALF_SIZE = 0.5
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def front_quad(scale: float = 1.0, offset=(0.0, 0.0, 0.0)) -> TexturedMesh:
    """A square in the plane z = 0 facing the front (+Z), textured red on its -X half and blue on its +X half."""
    corners = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]]) * HALF_SIZE
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])  # counter-clockwise seen from +Z
    uv_of_corner = (corners[:, :2] / HALF_SIZE + 1) / 2 * torch.tensor([1.0, -1.0]) + torch.tensor([0.0, 1.0])
    texture = torch.tensor([RED, BLUE]).T.repeat_interleave(4, dim=1)[:, None, :].expand(3, 4, 8)
    return TexturedMesh(corners * scale + torch.tensor(offset), faces, uv_of_corner[faces], texture)


@pytest.fixture
def quad_path(tmp_path):
    path = tmp_path / "quad.glb"
    save_mesh(path, front_quad())
    return path


def render(mesh_path, out_path, *options) -> int:
    return main(["render", str(mesh_path), "-o", str(out_path), "--device", "cpu", *map(str, options)])


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32) / 255


def expected_quad_mask(azimuth: float, elevation: float, distance: float, fov: float, resolution: int) -> np.ndarray:
    """Pixels whose centres fall inside the quad's projection, a convex quadrilateral."""
    camera = Camera.create(azimuth, elevation, distance, fov, dtype=torch.float64)
    corners = front_quad().verts.to(torch.float64)[None]
    projected = camera.project_to_pixels(corners, (resolution, resolution))[0].numpy()  # [4, 2] (column, row)
    centres = np.stack(np.meshgrid(np.arange(resolution) + 0.5, np.arange(resolution) + 0.5), axis=-1)
    edges = np.roll(projected, -1, axis=0) - projected
    to_centre = centres[:, :, None, :] - projected  # [H, W, 4, 2]
    side = edges[:, 0] * to_centre[..., 1] - edges[:, 1] * to_centre[..., 0]
    return np.all(side > 0, axis=-1) | np.all(side < 0, axis=-1)


@pytest.mark.parametrize("azimuth, elevation", [(0.0, 0.0), (180.0, 0.0), (35.0, 20.0), (-50.0, -10.0)])
def test_render_silhouette_is_where_the_camera_projects_the_quad(tmp_path, quad_path, azimuth, elevation):
    distance, fov, resolution = 2.2, 40.0, 48
    code = render(quad_path, tmp_path / "out.png", "--azimuth", azimuth, "--elevation", elevation,
                  "--distance", distance, "--fov", fov, "--resolution", resolution,
                  "--mask-out", tmp_path / "mask.png")
    assert code == 0
    mask = read_png(tmp_path / "mask.png") > 0.5
    expected = expected_quad_mask(azimuth, elevation, distance, fov, resolution)
    assert 0.1 < expected.mean() < 0.5  # a real quadrilateral, not the whole frame
    assert np.array_equal(mask, expected)


@pytest.mark.parametrize("azimuth, red_side", [(0.0, "left"), (180.0, "right")])
def test_render_shows_the_texture_the_right_way_round(tmp_path, quad_path, azimuth, red_side):
    code = render(quad_path, tmp_path / "out.png", "--azimuth", azimuth, "--elevation", 0, "--resolution", 48,
                  "--no-lighting", "--background", "#000000", "--mask-out", tmp_path / "mask.png")
    assert code == 0
    mask = read_png(tmp_path / "mask.png") > 0.5
    image = read_png(tmp_path / "out.png")
    assert mask.mean() > 0.1 and np.all(image[~mask] == 0)
    rows, columns = np.nonzero(mask)
    middle_row = rows[len(rows) // 2]
    quarter = (columns.max() - columns.min()) // 4  # sample away from the red-blue middle and the u wrap
    left, right = image[middle_row, columns.min() + quarter], image[middle_row, columns.max() - quarter]
    # Seen from the front (+Z), +X is on the right of the image; from the back, on the left.
    red, blue = (left, right) if red_side == "left" else (right, left)
    assert red == pytest.approx(RED, abs=0.02) and blue == pytest.approx(BLUE, abs=0.02)


def test_render_lighting_and_background(tmp_path, quad_path):
    common = ("--azimuth", 0, "--elevation", 0, "--distance", 2.5, "--resolution", 32, "--background", "1,0.5,0")
    assert render(quad_path, tmp_path / "lit.png", *common) == 0
    assert render(quad_path, tmp_path / "unlit.png", *common, "--no-lighting") == 0
    lit, unlit = read_png(tmp_path / "lit.png"), read_png(tmp_path / "unlit.png")
    assert lit[0, 0] == pytest.approx([1.0, 128 / 255, 0.0], abs=1e-6)
    centre_row = lit[16]
    # The light comes from above-front, so the front-facing quad is lit, but below its albedo.
    assert 0.3 < centre_row[8:12, 0].mean() < unlit[16, 8:12, 0].mean() - 0.1


def test_render_fit_rescales_meshes_in_other_units(tmp_path):
    save_mesh(tmp_path / "small.glb", front_quad())
    save_mesh(tmp_path / "huge.glb", front_quad(scale=100.0, offset=(50.0, -20.0, 7.0)))
    for name in ("small", "huge"):
        assert render(tmp_path / f"{name}.glb", tmp_path / f"{name}.png", "--fit", "--azimuth", 0, "--elevation", 0,
                      "--resolution", 32, "--mask-out", tmp_path / f"{name}_mask.png") == 0
    small, huge = read_png(tmp_path / "small_mask.png"), read_png(tmp_path / "huge_mask.png")
    assert small.mean() > 0.1 and np.array_equal(small, huge)


def test_render_help_shows_a_worked_example(capsys):
    assert main(["render", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "Example" in help_text and "ganverse3d render car.glb --azimuth 30" in help_text


@pytest.mark.parametrize("case", [
    "missing mesh", "not a mesh", "zero resolution", "negative resolution", "zero distance", "negative distance",
    "unwritable output", "output is a folder", "unwritable mask", "bad background", "fov of 180",
    "mask is the output", "mask is the output spelt otherwise", "mesh name too long", "output name too long",
])
def test_render_bad_input_is_one_sentence_exit_2_and_no_file(tmp_path, quad_path, capsys, case):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "notes.glb").write_text("not a mesh")
    mesh, out, options = quad_path, tmp_path / "out" / "image.png", []
    if case == "missing mesh":
        mesh = tmp_path / "missing.glb"
    elif case == "not a mesh":
        mesh = tmp_path / "notes.glb"
    elif case.endswith("resolution"):
        options = ["--resolution", 0 if case.startswith("zero") else -5]
    elif case.endswith("distance"):
        options = ["--distance", 0 if case.startswith("zero") else -1]
    elif case == "unwritable output":
        out = tmp_path / "a_file" / "image.png"
    elif case == "output is a folder":
        out = tmp_path
    elif case == "unwritable mask":
        options = ["--mask-out", tmp_path / "a_file" / "mask.png"]
    elif case == "bad background":
        options = ["--background", "purple"]
    elif case == "fov of 180":
        options = ["--fov", 180]
    elif case == "mask is the output":
        options = ["--mask-out", out]
    elif case == "mask is the output spelt otherwise":
        options = ["--mask-out", tmp_path / "out" / ".." / "out" / "image.png"]
    elif case == "mesh name too long":
        mesh = tmp_path / ("m" * 5000 + ".glb")  # ENAMETOOLONG
    elif case == "output name too long":
        out = tmp_path / ("o" * 5000 + ".png")
    before = sorted(tmp_path.rglob("*"))
    capsys.readouterr()

    assert render(mesh, out, *options) == 2
    errors = capsys.readouterr().err.strip()
    assert errors.startswith("Error: ") and "\n" not in errors and "Traceback" not in errors and len(errors) < 400
    if case.startswith("mask is the output"):
        assert errors == "Error: --mask-out must differ from the output image."
    assert sorted(tmp_path.rglob("*")) == before


def test_the_library_renders_a_mesh_file_into_an_image_and_its_mask(tmp_path, quad_path):
    camera = Camera.create(0.0, 0.0, 2.2, 40.0)
    written = api.write_render(quad_path, tmp_path / "image.png", camera, 24, mask_out=tmp_path / "mask.png",
                               lighting=False, device="cpu")
    assert written == [tmp_path / "image.png", tmp_path / "mask.png"]
    image, mask = api.render_mesh_file(quad_path, camera, 24, lighting=False, device="cpu")
    assert (tmp_path / "image.png").read_bytes() == png_bytes(image)
    assert (tmp_path / "mask.png").read_bytes() == png_bytes(mask)
    assert api.write_render(quad_path, tmp_path / "alone.png", camera, 24, device="cpu") == [tmp_path / "alone.png"]


def test_the_library_checks_both_outputs_before_reading_the_mesh(tmp_path):
    camera = Camera.create(0.0, 0.0, 2.2, 40.0)
    (tmp_path / "mask.png").mkdir()
    for out, mask_out, message in [(tmp_path / "a.png", tmp_path / "a.png", "must differ from the output image"),
                                   (tmp_path / "a.png", tmp_path / "mask.png", "mask.png is a folder"),
                                   (tmp_path / "a.jpg", None, "must end in .png")]:
        with pytest.raises(InputError, match=message) as raised:
            api.write_render(tmp_path / "missing.glb", out, camera, 24, mask_out=mask_out, device="cpu")
        if mask_out == out:
            assert raised.value.settings == ["mask_out"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mask.png"]
