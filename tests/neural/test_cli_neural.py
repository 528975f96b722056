"""`ganverse3d neural render | turntable | swap` with a tiny untrained StyleGAN-R: the files, their tiles and
the cameras they are rendered from (bad input is in tests/test_bad_input.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganverse3d import api
from ganverse3d.cli import main
from ganverse3d.files import to_uint8
from ganverse3d.geometry import Camera

from neural_helpers import save_tiny_stylegan_r

EXAMPLE_CAR = Path(__file__).resolve().parents[2] / "docs" / "example_car.png"
TILE = 16  # the tiny StyleGAN-R's resolution


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(save_tiny_stylegan_r(tmp_path_factory.mktemp("neural") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def mirrored_car(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "mirrored.png"
    Image.open(EXAMPLE_CAR).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    return str(path)


def pixels(path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


def tiles(sheet: np.ndarray, size: int) -> list[np.ndarray]:
    """The square tiles of a one-row sheet (image_grid's 2-pixel gaps)."""
    assert sheet.shape[0] == size and (sheet.shape[1] + 2) % (size + 2) == 0, sheet.shape
    return [sheet[:, left:left + size] for left in range(0, sheet.shape[1], size + 2)]


def reconstruction(photo=EXAMPLE_CAR):
    return api.reconstruct(photo, model="oracle", device="cpu", texture_size=0)


def test_render_defaults_to_the_photos_camera_and_upscales(bundle, tmp_path):
    native, large = tmp_path / "native.png", tmp_path / "large.png"
    assert main(["neural", "render", str(EXAMPLE_CAR), "--neural-model", bundle, "--device", "cpu", "--size", "0",
                 "-o", str(native)]) == 0
    assert main(["neural", "render", str(EXAMPLE_CAR), "--neural-model", bundle, "--device", "cpu",
                 "-o", str(large)]) == 0
    result = reconstruction()
    expected = api.neural_render(result, result.camera, neural_model=bundle, device="cpu")
    assert np.array_equal(pixels(native), to_uint8(expected))
    assert pixels(large).shape == (256, 256, 3)
    # The upscaled image is the native one, smoothly: shrunk back it is close to it.
    shrunk = F.interpolate(torch.from_numpy(pixels(large)).permute(2, 0, 1)[None].float(), size=(TILE, TILE),
                           mode="area")[0].permute(1, 2, 0).numpy()
    assert np.abs(shrunk - pixels(native)).mean() < 4


def test_render_takes_the_camera_given_and_keeps_the_photos_for_the_rest(bundle, tmp_path):
    out = tmp_path / "side.png"
    assert main(["neural", "render", str(EXAMPLE_CAR), "--neural-model", bundle, "--device", "cpu", "--size", "0",
                 "--azimuth", "200", "--fov", "45", "-o", str(out)]) == 0
    result = reconstruction()
    camera = Camera.create(200.0, float(result.camera.elevation[0]), float(result.camera.distance[0]), 45.0)
    expected = api.neural_render(result, camera, neural_model=bundle, device="cpu")
    assert np.array_equal(pixels(out), to_uint8(expected))
    own = api.neural_render(result, result.camera, neural_model=bundle, device="cpu")
    assert not np.array_equal(to_uint8(own), to_uint8(expected))


def test_turntable_is_photo_dibr_stylegan_r_then_the_azimuths(bundle, tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["neural", "turntable", str(EXAMPLE_CAR), "--neural-model", bundle, "--device", "cpu",
                 "--azimuths", "3", "--size", "0", "-o", str(out)]) == 0
    sheet = tiles(pixels(out), TILE)
    assert len(sheet) == 2 + 1 + 3
    result = reconstruction()
    scene = api.neural_scene(result, neural_model=bundle, device="cpu")
    camera = result.camera
    for step, tile in enumerate(sheet[2:]):  # the photo's camera, then 90, 180 and 270 degrees on
        turned = Camera(camera.azimuth + 90 * step, camera.elevation, camera.distance, camera.fov_y)
        assert np.array_equal(tile, to_uint8(scene.render(turned))), step
    framed = F.interpolate(result.image[None], size=(TILE, TILE), mode="bicubic", antialias=True)[0]
    assert np.abs(sheet[0].astype(int) - to_uint8(framed.clamp(0, 1))).max() <= 1
    # The mesh covers the car: the DIB-R tile differs from the photo where the car is, not in the sky's corner.
    assert np.array_equal(sheet[1][:3, :3], sheet[0][:3, :3])
    assert not np.array_equal(sheet[1], sheet[0])


def test_turntable_tiles_are_all_of_size(bundle, tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["neural", "turntable", str(EXAMPLE_CAR), "--neural-model", bundle, "--device", "cpu",
                 "--background", str(EXAMPLE_CAR), "--size", "24", "-o", str(out)]) == 0
    assert len(tiles(pixels(out), 24)) == 3 + 8


def test_swap_sheet_is_a_b_and_a_with_bs_parts(bundle, mirrored_car, tmp_path):
    out = tmp_path / "swap.png"
    assert main(["neural", "swap", str(EXAMPLE_CAR), mirrored_car, "--parts", "texture, shape", "--neural-model",
                 bundle, "--device", "cpu", "--size", "0", "-o", str(out)]) == 0
    a, b = reconstruction(), reconstruction(mirrored_car)
    assert abs(float(a.camera.azimuth[0]) - float(b.camera.azimuth[0])) > 30  # mirrored: another camera
    expected = [api.neural_render(item, item.camera, neural_model=bundle, device="cpu")
                for item in (a, b, api.swap(a, b, ("shape", "texture")))]
    sheet = tiles(pixels(out), TILE)
    assert len(sheet) == 3
    for tile, image in zip(sheet, expected):
        assert np.array_equal(tile, to_uint8(image))
    assert main(["neural", "swap", str(EXAMPLE_CAR), mirrored_car, "--parts", "background", "--neural-model",
                 bundle, "--device", "cpu", "-o", str(out)]) == 0
    assert pixels(out).shape == (256, 3 * 256 + 4, 3)


@pytest.mark.parametrize("content_shape, rows", [(None, slice(0, 16)), ((12, 16), slice(2, 14))])
def test_the_background_goes_where_the_generator_draws_its_content(content_shape, rows, tmp_path, monkeypatch):
    from ganverse3d.neural.networks import MappingNetwork

    seen = []
    property_codes = MappingNetwork.property_codes

    def recording(mapping, verts, texture, background, mask):
        seen.append(background[0])
        return property_codes(mapping, verts, texture, background, mask)

    monkeypatch.setattr(MappingNetwork, "property_codes", recording)
    model = str(save_tiny_stylegan_r(tmp_path / "tiny.safetensors", content_shape=content_shape))
    result = reconstruction()
    photo = torch.rand(3, 30, 40)  # 4:3, as the 12 x 16 box
    for background in (None, photo):
        api.neural_scene(result, background=background, neural_model=model, device="cpu")
    own, given = seen
    height = rows.stop - rows.start
    expected_own = F.interpolate(result.background[None], size=(height, 16), mode="bilinear", align_corners=False,
                                 antialias=True)[0]
    mask = F.interpolate(result.mask[None], size=(height, 16), mode="bilinear", align_corners=False,
                         antialias=True)[0] > 0.5
    torch.testing.assert_close(own[:, rows], expected_own * ~mask, rtol=0, atol=1e-6)
    if content_shape is None:  # a square canvas takes the photo's centred square
        photo = photo[:, :, 5:35]
    torch.testing.assert_close(given[:, rows], F.interpolate(photo[None], size=(height, 16), mode="bilinear",
                                                             align_corners=False, antialias=True)[0],
                               rtol=0, atol=1e-6)
    for background in (own, given):  # black outside the content box
        assert float(background[:, :rows.start].abs().sum() + background[:, rows.stop:].abs().sum()) == 0
