"""`ganverse3d reconstruct` and `ganverse3d.api.reconstruct`: photos in any common form become a loadable
textured mesh; every kind of bad input is one sentence, exit code 2 and no file written."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d import api, assets
from ganverse3d.bundle import save_module
from ganverse3d.cli import main
from ganverse3d.dataset import MultiViewDataset
from ganverse3d.errors import InputError
from ganverse3d.export import load_mesh
from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.inverse.model import InverseGraphicsNet
from ganverse3d.inverse.train import load_images, measure_framing
from ganverse3d.render import render_mesh

from conftest import DISTANCE, ELEVATION, FOV_Y, ellipsoid_content


@pytest.fixture(scope="module")
def model_path(multiview_dataset, tmp_path_factory):
    """An untrained tiny model whose bundle records the fixture data's framing, as training would."""
    torch.manual_seed(0)
    net = InverseGraphicsNet(resolution=16, texture_height=8, feature_dim=16, base_channels=8, max_channels=8,
                             texture_channels=8, reference_distance=DISTANCE, fov_y=FOV_Y)
    data = load_images(MultiViewDataset(multiview_dataset), 16, progress=False)
    path = tmp_path_factory.mktemp("model") / "inverse.safetensors"
    save_module(path, net, config={"framing": measure_framing(data.masks, data.cameras[:, 0])})
    return path


def car_photo(width=96, height=80, azimuth=60.0):
    """RGB uint8 [H, W, 3] of an ellipsoid car on a sky-blue background, and its bool mask [H, W]."""
    mesh = template_sphere()
    verts, texture = ellipsoid_content(1)
    camera = Camera.create(azimuth, ELEVATION, DISTANCE * 1.4, FOV_Y)
    out = render_mesh(verts[None], mesh.faces, mesh.face_uvs, texture[None], camera, (height, width),
                      background=torch.tensor([0.5, 0.7, 0.95]), soft=False)
    rgb = (out.image[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return rgb, out.mask[0, 0].numpy() > 0.5


def save_rgba(path, rgb, mask):
    Image.fromarray(np.dstack((rgb, mask.astype(np.uint8) * 255))).save(path)


def test_reconstruct_writes_a_loadable_glb_with_a_uv_texture(model_path, tmp_path, capsys):
    rgb, mask = car_photo()
    save_rgba(tmp_path / "photo.png", rgb, mask)
    out = tmp_path / "out" / "car.glb"
    assert main(["reconstruct", str(tmp_path / "photo.png"), "--model", str(model_path), "-o", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "Camera: azimuth" in printed and "elevation" in printed and "distance" in printed
    mesh = load_mesh(out)
    assert mesh.verts.shape == (642, 3) and mesh.faces.shape == (1280, 3)
    assert mesh.texture.shape == (3, 8, 16)
    assert mesh.face_uvs.std() > 0.1  # the template's real UV layout, not one point
    with Image.open(tmp_path / "out" / "car_turntable.png") as sheet:
        assert sheet.size == (7 * 128 + 6 * 2, 128)
    assert sorted(p.name for p in out.parent.iterdir()) == ["car.glb", "car_turntable.png"]


def test_reconstruct_writes_obj_with_material_and_texture(model_path, tmp_path):
    rgb, mask = car_photo()
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=95)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    out = tmp_path / "out" / "car.obj"
    assert main(["reconstruct", str(tmp_path / "photo.jpg"), "--mask", str(tmp_path / "mask.png"),
                 "--model", str(model_path), "-o", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["car.mtl", "car.obj", "car_texture.png",
                                                            "car_turntable.png"]
    assert load_mesh(out).faces.shape == (1280, 3)


def test_api_reconstruction_fields(model_path):
    rgb, mask = car_photo()
    result = api.reconstruct(rgb, mask=mask, model=model_path, device="cpu")
    assert len(result.camera) == 1 and result.camera.fov_y.item() == FOV_Y
    assert result.image.shape == result.background.shape == (3, api.FRAMED_SIZE, api.FRAMED_SIZE)
    assert result.mask.shape == (1, api.FRAMED_SIZE, api.FRAMED_SIZE)
    car = result.mask > 0.5
    assert car.any() and float(result.background[car.expand(3, -1, -1)].abs().max()) == 0.0
    assert float(result.background[~car.expand(3, -1, -1)].mean()) > 0.3  # the sky is kept
    # The crop frames the car as the training data did: its box's longer side is one of the measured fills.
    left, top, size = result.crop
    rows, columns = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    long_side = max(rows[-1] + 1 - rows[0], columns[-1] + 1 - columns[0])
    framing = api.load_inverse_model(model_path, "cpu")[1]
    fills = [framing["fill"]] + [fill for fill in framing["bin_fill"] if fill is not None]
    assert min(abs(long_side / size - fill) for fill in fills) < 1e-6


def test_crop_repeats_edge_pixels_outside_the_photo():
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    array[:, 0] = 200  # left column bright
    crop = api.crop_resize(array, (-4.0, 0.0, 8.0), 8, edge=True)
    assert crop.shape == (8, 8, 3)
    assert (crop[:, :4] == 200).all() and (crop[:, 5:] == 0).all()
    assert (api.crop_resize(array[..., 0], (-4.0, 0.0, 8.0), 8, edge=False)[:, :4] == 0).all()


def test_exif_orientation_sixteen_bit_and_alpha_are_honoured(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)  # stored: left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    rgb, alpha = api.read_photo(tmp_path / "rotated.png")
    assert rgb.shape == (40, 20, 3) and alpha is None
    assert tuple(rgb[5, 10]) == (255, 0, 0) and tuple(rgb[35, 10]) == (0, 0, 0)  # displayed: top half red

    grey16 = np.full((6, 5), 32896, dtype=np.uint16)  # 32896 / 65535 * 255 = 128
    grey16[0, 0] = 65535
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    rgb, _ = api.read_photo(tmp_path / "grey16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 5, 3)
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[1, 1]) == (128, 128, 128)

    opaque = np.dstack((pixels, np.full((20, 40), 255, dtype=np.uint8)))
    assert api.read_photo(opaque)[1] is None
    cutout = opaque.copy()
    cutout[:, 30:, 3] = 0
    assert api.read_photo(cutout)[1][:, 30:].max() == 0


def truncated_png(path):
    buffer = io.BytesIO()
    Image.fromarray(car_photo()[0]).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def two_blob_mask(shape):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[10:30, 5:30] = 255
    mask[50:70, 60:90] = 255
    return mask


@pytest.mark.parametrize("case, expected", [
    ("not_an_image", "not an image file"),
    ("truncated", "damaged or truncated"),
    ("too_many_pixels", "megapixels"),
    ("empty_mask", "No car found"),
    ("two_cars", "2 separate cars"),
    ("mask_size", "must match"),
    ("bad_suffix", "must end in .glb or .obj"),
    ("no_segmenter", "does not exist"),
    ("missing_photo", "does not exist"),
])
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(case, expected, model_path, tmp_path, capsys,
                                                             monkeypatch):
    rgb, mask = car_photo()
    photo, mask_path, out = tmp_path / "photo.png", tmp_path / "mask.png", tmp_path / "out" / "car.glb"
    Image.fromarray(rgb).save(photo)
    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
    extra = ["--mask", str(mask_path)]
    if case == "not_an_image":
        photo.write_text("this is not a picture")
    elif case == "truncated":
        truncated_png(photo)
    elif case == "too_many_pixels":
        monkeypatch.setattr(api, "MAX_PIXELS", 1000)
    elif case == "empty_mask":
        Image.fromarray(np.zeros_like(mask, dtype=np.uint8)).save(mask_path)
    elif case == "two_cars":
        Image.fromarray(two_blob_mask(mask.shape)).save(mask_path)
    elif case == "mask_size":
        Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(mask_path)
    elif case == "bad_suffix":
        out = tmp_path / "out" / "car.stl"
    elif case == "no_segmenter":
        extra = ["--segmenter", f"world:{tmp_path / 'missing.safetensors'}"]
    elif case == "missing_photo":
        photo = tmp_path / "nowhere.png"
    code = main(["reconstruct", str(photo), *extra, "--model", str(model_path), "-o", str(out), "--device", "cpu"])
    error = capsys.readouterr().err
    assert code == 2
    assert expected in error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_without_a_default_model_it_asks_for_one(tmp_path, monkeypatch, capsys):
    # A registry whose manifest lists the shipped files, none of which is there.
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "manifest.json").write_bytes((assets.FOLDER / "manifest.json").read_bytes())
    monkeypatch.setattr(assets, "FOLDER", tmp_path / "assets")
    rgb, mask = car_photo()
    save_rgba(tmp_path / "photo.png", rgb, mask)
    assert main(["reconstruct", str(tmp_path / "photo.png"), "-o", str(tmp_path / "car.glb")]) == 2
    assert "--model" in capsys.readouterr().err
    assert not (tmp_path / "car.glb").exists()


def test_a_model_without_framing_is_refused(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_module(path, InverseGraphicsNet(resolution=16, texture_height=4, feature_dim=8, base_channels=4,
                                         max_channels=4, texture_channels=4))
    with pytest.raises(InputError, match="frames cars"):
        api.load_inverse_model(path, "cpu")
