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
from ganverse3d.dataset.segment import SEARCH_SIZE, WorldSegmenter, crop_resize, segment_photo
from ganverse3d.world import render_items

from inverse_helpers import DISTANCE, ELEVATION, FOV_Y, ellipsoid_content


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


def test_texture_size_bakes_the_photo_into_a_larger_texture_and_changes_nothing_else(model_path):
    rgb, mask = car_photo(width=300, height=250)
    plain = api.reconstruct(rgb, mask=mask, model=model_path, device="cpu")
    again = api.reconstruct(rgb, mask=mask, model=model_path, device="cpu", texture_size=None)
    assert torch.equal(plain.mesh.texture, again.mesh.texture) and plain.mesh.texture.shape == (3, 8, 16)
    baked = api.reconstruct(rgb, mask=mask, model=model_path, device="cpu", texture_size=512)
    assert baked.mesh.texture.shape == (3, 512, 1024)
    assert torch.equal(baked.mesh.verts, plain.mesh.verts) and torch.equal(baked.camera.azimuth, plain.camera.azimuth)
    # The untrained network's texture is noise; the baked one (in its own UV atlas) shows the photo's car where
    # the camera sees it.
    def seen_error(mesh):
        image = render_mesh(mesh.verts[None], mesh.faces, mesh.face_uvs, mesh.texture[None], baked.camera,
                            api.FRAMED_SIZE, soft=False)
        inside = (image.mask[0] > 0.5) & (baked.mask > 0.5)
        return float((image.image[0] - baked.image).abs()[inside.expand(3, -1, -1)].mean())
    assert seen_error(baked.mesh) < 0.5 * seen_error(plain.mesh), (seen_error(baked.mesh), seen_error(plain.mesh))


def test_a_quality_sets_fit_steps_and_texture_size_unless_they_are_given(model_path, monkeypatch):
    import ganverse3d.inverse.fitting as fitting

    calls = []
    real_fit = fitting.fit_to_photo
    monkeypatch.setattr(fitting, "fit_to_photo", lambda *args: calls.append(args[-1].steps) or real_fit(*args))
    rgb, mask = car_photo(width=300, height=250)
    balanced = api.reconstruct(rgb, mask=mask, model=model_path, device="cpu", quality="balanced", fit_steps=2)
    assert calls == [2] and balanced.mesh.texture.shape[-2] == api.QUALITIES["balanced"].texture_size
    fast = api.reconstruct(rgb, mask=mask, model=model_path, device="cpu", quality="fast")
    assert calls == [2] and fast.mesh.texture.shape == (3, 8, 16)
    with pytest.raises(InputError) as raised:
        api.reconstruct(rgb, mask=mask, model=model_path, device="cpu", quality="ultra")
    assert raised.value.settings == ["quality"] and "fast, balanced, best" in str(raised.value)


def test_the_cli_help_states_the_presets_as_they_are():
    from click.testing import CliRunner

    from ganverse3d.cli import cli

    help_text = " ".join(CliRunner().invoke(cli, ["reconstruct", "--help"]).output.split())
    for name, preset in api.QUALITIES.items():
        assert f"{name}: {preset.fit_steps} and {preset.texture_size}" in help_text
    assert f"[default: {api.DEFAULT_QUALITY}]" in help_text


@pytest.mark.parametrize("texture_size", [100, 5000, 1024.0, True, "1024"])
def test_texture_size_out_of_range_is_one_sentence_naming_the_setting(texture_size, model_path):
    rgb, mask = car_photo()
    with pytest.raises(InputError) as raised:
        api.reconstruct(rgb, mask=mask, model=model_path, device="cpu", texture_size=texture_size)
    assert raised.value.settings == ["texture_size"] and "from 512 to 4096" in str(raised.value)


def test_crop_repeats_edge_pixels_outside_the_photo():
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    array[:, 0] = 200  # left column bright
    crop = crop_resize(array, (-4.0, 0.0, 8.0), 8, edge=True)
    assert crop.shape == (8, 8, 3)
    assert (crop[:, :4] == 200).all() and (crop[:, 5:] == 0).all()
    assert (crop_resize(array[..., 0], (-4.0, 0.0, 8.0), 8, edge=False)[:, :4] == 0).all()


def test_exif_orientation_and_alpha_are_honoured(tmp_path):
    pixels = np.zeros((40, 80, 3), dtype=np.uint8)
    pixels[:, :40] = (255, 0, 0)  # stored: left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    rgb, alpha = api.read_photo(tmp_path / "rotated.png")
    assert rgb.shape == (80, 40, 3) and alpha is None
    assert tuple(rgb[10, 20]) == (255, 0, 0) and tuple(rgb[70, 20]) == (0, 0, 0)  # displayed: top half red

    opaque = np.dstack((pixels, np.full((40, 80), 255, dtype=np.uint8)))
    assert api.read_photo(opaque)[1] is None
    cutout = opaque.copy()
    cutout[:, 60:, 3] = 0
    assert api.read_photo(cutout)[1][:, 60:].max() == 0


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_sixteen_bit_grey_photos_are_scaled_by_the_bits_they_use(tmp_path, bits):
    # 16-bit files often hold 8-bit values or a 12-bit sensor's: dividing by 65535 made those nearly black.
    full = 2**bits - 1
    grey = np.zeros((40, 32), dtype=np.uint16)
    grey[:, 16:] = full
    grey[:20, :16] = round(full * 128 / 255)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    rgb, alpha = api.read_photo(tmp_path / "grey16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 32, 3) and alpha is None
    assert tuple(rgb[0, 20]) == (255, 255, 255) and tuple(rgb[0, 0]) == (128, 128, 128)
    assert tuple(rgb[30, 0]) == (0, 0, 0)


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


def damaged_png(path, size):
    """A PNG whose header says ``size`` but whose pixel data is garbage: decoding it fails."""
    Image.new("RGB", size).save(path)
    data = bytearray(path.read_bytes())
    pixels = data.index(b"IDAT") + 4
    data[pixels:pixels + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("size", [(1, 1), (4000, 1), (31, 400)])
def test_photos_too_small_to_hold_a_car_are_refused_before_decoding(size, model_path, tmp_path, capsys):
    photo, out = tmp_path / "tiny.png", tmp_path / "out" / "car.glb"
    damaged_png(photo, size)  # decoding would report damage: the size must be checked first
    assert main(["reconstruct", str(photo), "--model", str(model_path), "-o", str(out), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert f"has {size[0]} x {size[1]} pixels, too few to hold a car" in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_car_too_small_to_reconstruct_is_refused(tmp_path, capsys):
    rgb = np.full((64, 64, 3), 200, dtype=np.uint8)
    car = np.zeros((64, 64), dtype=bool)
    car[20:40, 10:50] = True  # a fifth of the photo, but 40 pixels long: the embedded model looks at 54
    save_rgba(tmp_path / "photo.png", rgb, car)
    out = tmp_path / "out" / "car.glb"
    assert main(["reconstruct", str(tmp_path / "photo.png"), "-o", str(out), "--device", "cpu"]) == 2
    assert ("The car is only 40 pixels long in the photo, too small to reconstruct; give a photo in which it spans "
            "at least 54 pixels.") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


needs_segmenter = pytest.mark.skipif(not assets.lookup("segmenter").path.is_file(),
                                     reason="the embedded world segmenter is not built yet")


@pytest.fixture(scope="module")
def world_cars():
    """Four unseen world renders, uint8 [4, 256, 256, 3], and their car masks, bool [4, 256, 256]."""
    _, _, render = render_items(seed=4711, indices=range(4), resolution=256)
    images = (render.images.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    return images, render.masks[:, 0].numpy() > 0.5


def iou(found, truth):
    return (found & truth).sum() / (found | truth).sum()


@needs_segmenter
def test_each_world_car_alone_is_found_with_an_accurate_mask(world_cars):
    for image, truth in zip(*world_cars):
        assert iou(segment_photo(image, "world", "cpu"), truth) > 0.9


@needs_segmenter
def test_grey_sixteen_bit_photos_of_cars_are_segmented(world_cars, tmp_path):
    # Stored as a 12-bit sensor's values in a 16-bit PNG: read as 16-bit they were nearly black ("No car found").
    for image, truth in zip(*world_cars):
        grey = np.asarray(Image.fromarray(image).convert("L")).astype(np.uint16) * 16
        Image.fromarray(grey).save(tmp_path / "grey.png")
        rgb, _ = api.read_photo(tmp_path / "grey.png")
        assert iou(segment_photo(rgb, "world", "cpu"), truth) > 0.9


def not_one_car(case, images):
    """A photo of ``case``: no car at all, or two world cars side by side or one above the other."""
    if case == "all_blue":
        return np.tile(np.array([30, 60, 220], dtype=np.uint8), (256, 256, 1))
    if case == "noise":
        return np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    if case == "two_side_by_side":
        return np.concatenate(images[:2], axis=1)
    return np.concatenate(images[2:], axis=0)


@needs_segmenter
@pytest.mark.parametrize("case, expected", [
    ("all_blue", "No car found in the photo"),
    ("noise", "No car found in the photo"),
    # The world segmenter sees cars that touch as one blob, which it is not sure of.
    ("two_side_by_side", "No single car found in the photo"),
    ("two_stacked", "The photo shows 2 cars"),
])
def test_what_is_not_one_car_is_one_sentence_exit_2_and_nothing_written(case, expected, world_cars, model_path,
                                                                        tmp_path, capsys):
    Image.fromarray(not_one_car(case, world_cars[0])).save(tmp_path / "photo.png")
    out = tmp_path / "out" / "car.glb"
    assert main(["reconstruct", str(tmp_path / "photo.png"), "--model", str(model_path), "-o", str(out),
                 "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert expected in error and "--mask" in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


@needs_segmenter
def test_a_car_covering_3_percent_of_a_white_frame_gets_a_sharp_mask(world_cars):
    # Seen whole, the car is a few pixels to the segmenter, whose blob took in the white (and the texture with
    # it: IoU 0.35-0.70); outlined again in a crop framed around it, the mask is as good as for a large car.
    image, truth = world_cars[0][0], world_cars[1][0]
    side = round(256 * (truth.mean() / 0.03) ** 0.5)
    offset = (side - 256) // 2
    frame = np.full((side, side, 3), 255, dtype=np.uint8)
    frame[offset:offset + 256, offset:offset + 256] = np.where(truth[..., None], image, 255)
    true_frame = np.zeros((side, side), dtype=bool)
    true_frame[offset:offset + 256, offset:offset + 256] = truth
    assert iou(segment_photo(frame, "world", "cpu"), true_frame) > 0.9


@needs_segmenter
def test_a_phone_size_photo_is_segmented_through_small_copies(world_cars, monkeypatch):
    image, truth = world_cars[0][1], world_cars[1][1]
    photo = np.asarray(Image.fromarray(image).resize((4000, 3000), Image.BICUBIC))
    seen_sizes = []
    segment = WorldSegmenter.segment

    def spy(self, images):
        seen_sizes.append(max(images.shape[-2:]))
        return segment(self, images)

    monkeypatch.setattr(WorldSegmenter, "segment", spy)
    found = segment_photo(photo, "world", "cpu")
    assert found.shape == (3000, 4000) and max(seen_sizes) <= SEARCH_SIZE
    assert iou(found, np.asarray(Image.fromarray(truth).resize((4000, 3000), Image.NEAREST))) > 0.9


@pytest.mark.parametrize("photo_name, mask_name, out_name", [
    ("car.glb", None, "car.glb"),                   # -o is the photo
    ("photo.png", "car.glb", "car.glb"),            # -o is the mask
    ("car_texture.png", None, "car.obj"),           # the .obj's texture would replace the photo
    ("car.mtl", None, "car.obj"),                   # and its material file
    ("car_turntable.png", None, "car.glb"),         # the turntable sheet would replace the photo
    ("car.glb", None, "sub/../car.glb"),            # another spelling of the photo's path
    ("photo.png", None, "link.glb"),                # a link to the photo
])
def test_an_output_that_is_an_input_is_refused_before_any_work(photo_name, mask_name, out_name, model_path,
                                                              tmp_path, capsys, monkeypatch):
    rgb, mask = car_photo()
    Image.fromarray(rgb).save(tmp_path / photo_name, format="PNG")
    mask_option = []
    if mask_name:
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / mask_name, format="PNG")
        mask_option = ["--mask", str(tmp_path / mask_name)]
    (tmp_path / "sub").mkdir()
    if out_name == "link.glb":
        (tmp_path / "link.glb").symlink_to(tmp_path / photo_name)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    monkeypatch.setattr(api, "reconstruct", lambda *args, **kwargs: pytest.fail("reconstructed before checking"))
    assert main(["reconstruct", str(tmp_path / photo_name), *mask_option, "--model", str(model_path),
                 "-o", str(tmp_path / out_name), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "would replace the " + ("mask" if mask_name else "photo") in error and "; change --out." in error
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


def test_write_reconstruction_never_replaces_the_photo_it_was_made_from(model_path, tmp_path):
    rgb, mask = car_photo()
    photo = tmp_path / "car_turntable.png"
    save_rgba(photo, rgb, mask)
    original = photo.read_bytes()
    result = api.reconstruct(photo, model=model_path, device="cpu")
    with pytest.raises(InputError, match="would replace the photo"):
        api.write_reconstruction(result, tmp_path / "car.glb")
    assert photo.read_bytes() == original and sorted(tmp_path.iterdir()) == [photo]


@pytest.mark.parametrize("in_the_way", ["car_turntable.png", "car.mtl", "car_texture.png"])
def test_a_folder_where_a_sibling_goes_is_one_sentence_and_leaves_nothing(in_the_way, model_path, tmp_path, capsys):
    rgb, mask = car_photo()
    save_rgba(tmp_path / "photo.png", rgb, mask)
    (tmp_path / "out" / in_the_way).mkdir(parents=True)
    assert main(["reconstruct", str(tmp_path / "photo.png"), "--model", str(model_path),
                 "-o", str(tmp_path / "out" / "car.obj"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert f"Cannot write {tmp_path / 'out' / in_the_way}: a folder of that name is in the way." in error
    assert error.count("\n") == 1
    assert [path.name for path in (tmp_path / "out").iterdir()] == [in_the_way]


@pytest.mark.parametrize("too_long", ["photo", "mask", "out"])
def test_a_name_too_long_for_the_system_is_one_sentence_with_a_shortened_path(too_long, model_path, tmp_path,
                                                                              capsys):
    rgb, mask = car_photo()
    paths = {"photo": tmp_path / "photo.png", "mask": tmp_path / "mask.png", "out": tmp_path / "out" / "car.glb"}
    Image.fromarray(rgb).save(paths["photo"])
    Image.fromarray(mask.astype(np.uint8) * 255).save(paths["mask"])
    paths[too_long] = paths[too_long].with_name("x" * 5000 + paths[too_long].suffix)  # ENAMETOOLONG
    assert main(["reconstruct", str(paths["photo"]), "--mask", str(paths["mask"]), "--model", str(model_path),
                 "-o", str(paths["out"]), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("Error: Cannot use ") and error.endswith(f"xxx{paths[too_long].suffix}: File name too long.\n")
    assert len(error) < 400 and error.count("\n") == 1 and "Traceback" not in error
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
