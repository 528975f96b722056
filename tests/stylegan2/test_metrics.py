"""FID and its feature extractors: the Fréchet distance's closed forms, the world feature net, Inception from a
local file, and FID lines during GAN training."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganverse3d import assets
from ganverse3d.bundle import load_module, read_metadata, save_module
from ganverse3d.cli import main
from ganverse3d.errors import InputError
from ganverse3d.stylegan2.metrics import (INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL, FeatureStatistics,
                                          InceptionFeatures, compute_fid, extract_features, fid, frechet_distance,
                                          load_feature_extractor)
from ganverse3d.stylegan2.networks import Generator
from ganverse3d.stylegan2.train import TrainConfig, train
from ganverse3d.world.features import (FeatureNetConfig, WorldFeatureNet, evaluate_feature_net, load_world_labels,
                                       train_feature_net)

SHAPES = ("square", "disc", "bar")


def gaussian(mean, cov) -> FeatureStatistics:
    return FeatureStatistics(torch.tensor(mean, dtype=torch.float64), torch.tensor(cov, dtype=torch.float64), 100)


def test_frechet_distance_matches_closed_forms():
    # Diagonal covariances commute: FID = |m1 - m2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = (1 + 4 + 0) + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(gaussian([0, 0, 1], np.diag(a)), gaussian([1, 2, 1], np.diag(b))) == pytest.approx(expected)

    # A full covariance and a multiple of it: FID = tr(C) (1 - sqrt(s))^2.
    root = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cov = (root @ root.T).numpy()
    assert frechet_distance(gaussian(np.zeros(6), cov), gaussian(np.zeros(6), 9 * cov)) == pytest.approx(
        np.trace(cov) * (1 - 3) ** 2)


def test_frechet_distance_is_zero_for_identical_sets_symmetric_and_agrees_with_scipy():
    rng = torch.Generator().manual_seed(1)
    mixing_a, mixing_b = torch.randn(8, 8, generator=rng), torch.randn(8, 8, generator=rng)
    a = FeatureStatistics.of(torch.randn(300, 8, generator=rng) @ mixing_a)
    b = FeatureStatistics.of(torch.randn(200, 8, generator=rng) @ mixing_b + 0.5)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 1

    linalg = pytest.importorskip("scipy.linalg")  # the textbook formula, with a general matrix square root
    cross = linalg.sqrtm(a.cov.numpy() @ b.cov.numpy()).real
    expected = ((a.mean - b.mean) ** 2).sum().item() + np.trace(a.cov.numpy() + b.cov.numpy() - 2 * cross)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


class MeanColour(torch.nn.Module):
    """A stand-in extractor: the mean colour of each image."""

    name, feature_dim = "mean-colour", 3

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # so that extract_features finds a device

    def features(self, images):
        return images.mean(dim=(2, 3))


def test_fid_of_image_sets_is_named_zero_for_identical_sets_and_grows_with_a_colour_shift():
    images = torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    same = fid(MeanColour(), images, images)
    assert (same.key, same.num_real, same.num_fake) == ("fid-mean-colour", 40, 40)
    assert same.value == pytest.approx(0, abs=1e-10)
    shifted = fid(MeanColour(), images, (images * 255).to(torch.uint8) // 2)  # uint8 input, half as bright
    assert shifted.value == pytest.approx(3 * 0.25**2, rel=0.1)  # mean colour moves by ~0.25 per channel


# --- the world feature net ---------------------------------------------------------------------------


def write_toy_world(folder, count: int, seed: int, size: int = 16):
    """A world-format dataset whose 'body type' is a shape, whose azimuth places a dot on a circle and whose
    elevation sets the background brightness. Like world cars, it is mirror-symmetric: the mirror image of
    azimuth a is azimuth -a."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1  # [-1, 1], x to the right, y down
    lines = []
    for index in range(count):
        shape, azimuth, elevation = SHAPES[index % 3], rng.uniform(0, 360), rng.uniform(0, 30)
        image = np.full((size, size, 3), elevation / 30 * 0.6, dtype=np.float32)
        inside = {"square": (abs(xs) < 0.4) & (abs(ys) < 0.4), "disc": xs**2 + ys**2 < 0.2,
                  "bar": (abs(xs) < 0.6) & (abs(ys) < 0.15)}[shape]
        image[inside] = (0.9, 0.3, 0.2)
        dot_x, dot_y = 0.75 * math.sin(math.radians(azimuth)), -0.75 * math.cos(math.radians(azimuth))
        image[(xs - dot_x) ** 2 + (ys - dot_y) ** 2 < 0.06] = (0.1, 0.9, 0.9)
        name = f"{index:06d}"
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / "images" / f"{name}.png")
        lines.append(json.dumps({"id": index, "image": f"images/{name}.png", "body_type": shape,
                                 "camera": {"azimuth": azimuth, "elevation": elevation, "distance": 3.6, "fov_y": 30}}))
    (folder / "meta.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "manifest.json").write_text(json.dumps({"generator": "world", "body_types": list(SHAPES)}))
    return folder


@pytest.fixture(scope="module")
def toy_world(tmp_path_factory):
    return write_toy_world(tmp_path_factory.mktemp("toy") / "world", 240, seed=0)


@pytest.fixture(scope="module")
def toy_feature_net(toy_world, tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "toy_net.safetensors"
    config = FeatureNetConfig(data=str(toy_world), resolution=16, epochs=30, batch=16, width=8, feature_dim=16)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small trains several times faster on one thread, more so on a busy machine
    try:
        evaluation = train_feature_net(config, path, device="cpu", runs_root=path.parent / "runs")
    finally:
        torch.set_num_threads(threads)
    return path, evaluation


def test_world_feature_net_learns_the_labels_and_its_features_separate_classes(toy_feature_net, tmp_path):
    path, evaluation = toy_feature_net
    assert evaluation["count"] == 24
    assert evaluation["body_type_accuracy"] >= 0.9
    assert evaluation["azimuth_error_deg_median"] < 30
    assert evaluation["elevation_error_deg_mean"] < 5

    # On images it never saw, two sets of one class are much closer in FID than two different classes.
    net = load_module(path, WorldFeatureNet)
    fresh = load_world_labels(write_toy_world(tmp_path / "fresh", 180, seed=1), 16)
    assert evaluate_feature_net(net, fresh)["body_type_accuracy"] >= 0.9
    by_class = [fresh.images[fresh.body == k] for k in range(3)]
    within = fid(net, by_class[0][:30], by_class[0][30:]).value
    between = min(fid(net, by_class[0][:30], by_class[k]).value for k in (1, 2))
    assert between > 4 * within


def test_feature_net_training_is_seeded(toy_world, tmp_path):
    config = FeatureNetConfig(data=str(toy_world), resolution=16, epochs=1, batch=16, width=4, feature_dim=8)
    train_feature_net(config, tmp_path / "a.safetensors", device="cpu", runs_root=tmp_path / "runs")
    train_feature_net(config, tmp_path / "b.safetensors", device="cpu", runs_root=tmp_path / "runs")
    a, b = load_module(tmp_path / "a.safetensors"), load_module(tmp_path / "b.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_feature_net_cli_writes_a_loadable_bundle_with_its_heldout_accuracy(toy_world, tmp_path, capsys):
    out = tmp_path / "net.safetensors"
    code = main(["gan", "feature-net", "--data", str(toy_world), "--out", str(out), "--resolution", "16",
                 "--epochs", "1", "--device", "cpu", "--runs", str(tmp_path / "runs")])
    assert code == 0
    assert "body type accuracy" in capsys.readouterr().out
    net = load_feature_extractor(out)
    assert isinstance(net, WorldFeatureNet) and net.body_types == list(SHAPES)
    provenance = read_metadata(out)["provenance"]
    assert provenance["stage"] == "gan feature-net" and 0 <= provenance["heldout"]["body_type_accuracy"] <= 1
    # A resume keeps the epochs (the learning-rate schedule spans them); resuming the finished run copies its bundle.
    run_dir, two = tmp_path / "runs" / "feature_net" / "00000-world-r16", tmp_path / "two.safetensors"
    assert main(["gan", "feature-net", "--resume", str(run_dir), "--epochs", "2", "--out", str(two),
                 "--device", "cpu"]) == 2
    assert not two.exists() and json.loads((run_dir / "config.json").read_text())["epochs"] == 1
    assert main(["gan", "feature-net", "--resume", str(run_dir), "--out", str(two), "--device", "cpu"]) == 0
    assert two.read_bytes() == out.read_bytes()


def test_feature_net_cli_rejects_a_folder_without_world_labels(tmp_path, capsys):
    (tmp_path / "plain" / "images").mkdir(parents=True)
    code = main(["gan", "feature-net", "--data", str(tmp_path / "plain"), "--out", str(tmp_path / "n.safetensors"),
                 "--runs", str(tmp_path / "runs")])
    assert code == 2
    assert "not a complete world dataset" in capsys.readouterr().err
    assert not (tmp_path / "n.safetensors").exists() and not (tmp_path / "runs").exists()


@pytest.mark.skipif(not assets.lookup("feature_net").path.is_file(), reason="the embedded world feature net is not built yet")
def test_embedded_feature_net_reads_fresh_world_renders():
    from ganverse3d.world.scene import render_items

    net = load_feature_extractor(None)
    cars, scenes, render = render_items(seed=987654, indices=range(48), resolution=net.resolution)
    with torch.no_grad():
        body, azimuth_logits, elevation = net(render.images)
    truth = torch.tensor([net.body_types.index(car.body_type) for car in cars])
    assert (body.argmax(1) == truth).float().mean() >= 0.75
    difference = (net.azimuth_deg(azimuth_logits) - torch.tensor([s.azimuth for s in scenes])).abs() % 360
    assert torch.minimum(difference, 360 - difference).median() < 20
    assert (elevation - torch.tensor([s.elevation for s in scenes])).abs().mean() < 6


# --- Inception from a local file -----------------------------------------------------------------------


def test_missing_inception_weights_say_what_file_is_needed_and_where_to_get_it(tmp_path):
    with pytest.raises(InputError) as error:
        load_feature_extractor(tmp_path / "inception.pth")
    message = str(error.value)
    assert INCEPTION_WEIGHTS_FILE in message and INCEPTION_WEIGHTS_URL in message and "internet" in message


def test_inception_features_match_torchvision_on_a_local_random_state_dict(tmp_path):
    from torchvision.models.inception import Inception3

    torch.manual_seed(0)
    reference = Inception3(init_weights=False, transform_input=False).eval()
    torch.save(reference.state_dict(), tmp_path / "random_inception.pth")
    extractor = load_feature_extractor(tmp_path / "random_inception.pth")
    assert isinstance(extractor, InceptionFeatures)

    images = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(3))
    features = extract_features(extractor, images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    # What these weights expect: 299 x 299, scaled to [-1, 1]; the features are the classifier's input.
    reference.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference(F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1)
    torch.testing.assert_close(features.float(), expected, rtol=1e-4, atol=1e-4)


def test_a_file_that_is_not_inception_weights_is_an_input_error(tmp_path):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="not torchvision's inception_v3 state dict"):
        load_feature_extractor(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not weights")
    with pytest.raises(InputError, match="not a PyTorch weights file"):
        load_feature_extractor(tmp_path / "junk.pth")


# --- FID of generators -----------------------------------------------------------------------------------


def tiny_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=128, channel_max=8,
                     num_mapping_layers=2).eval()


def save_pngs(folder, images):
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        array = (image.permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        Image.fromarray(array).save(folder / f"{index:06d}.png")
    return folder


def test_compute_fid_is_low_against_the_generators_own_images_and_high_against_others(tmp_path, toy_feature_net, capsys):
    net = load_module(toy_feature_net[0], WorldFeatureNet)
    generator = tiny_generator()
    with torch.no_grad():
        own = (generator(torch.randn(96, 8, generator=torch.Generator().manual_seed(7)), noise_mode="random") + 1) / 2
    own_folder = save_pngs(tmp_path / "own", own)
    other_folder = save_pngs(tmp_path / "other", torch.rand(96, 3, 1, 1).expand(-1, -1, 16, 16))  # flat colours

    close = compute_fid(generator, own_folder, num_fakes=96, extractor=net)
    far = compute_fid(generator, other_folder, num_fakes=96, extractor=net, num_reals=80)
    assert (close.key, close.num_real, close.num_fake, far.num_real) == ("fid-world", 96, 96, 80)
    assert far.value > 5 * close.value

    save_module(tmp_path / "G.safetensors", generator)
    code = main(["gan", "fid", str(tmp_path / "G.safetensors"), "--data", str(own_folder), "--num-fakes", "96",
                 "--feature-net", str(toy_feature_net[0]), "--device", "cpu"])
    assert code == 0
    assert capsys.readouterr().out.startswith(f"fid-world {close.value:.3f} (96 real, 96 generated images)")


@pytest.fixture()
def tiny_dataset(tmp_path):
    rng = np.random.default_rng(0)
    return save_pngs(tmp_path / "data" / "images", torch.from_numpy(rng.random((12, 3, 8, 8)).astype(np.float32))).parent


def tiny_config(data, **overrides):
    settings = dict(data=str(data), resolution=8, kimg=0.016, batch=4, z_dim=8, w_dim=8, mapping_layers=2,
                    channel_base=64, channel_max=8, sample_every=2, checkpoint_every=2, log_every=1)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_training_writes_fid_world_lines_without_changing_the_run(tiny_dataset, tmp_path, toy_feature_net):
    measured = train(tiny_config(tiny_dataset, metric_every=2, feature_net=str(toy_feature_net[0]), metric_fakes=16),
                     runs_root=tmp_path / "a", device="cpu")
    lines = [json.loads(line) for line in (measured.parent.parent / "metrics.jsonl").read_text().splitlines()]
    fid_lines = [line for line in lines if "fid-world" in line]
    assert [line["step"] for line in fid_lines] == [2, 4]
    assert all(set(line) == {"step", "kimg", "fid-world"} and line["fid-world"] > 0 for line in fid_lines)

    # Measuring leaves the training RNG alone: the same run without FID ends with the same weights.
    plain = train(tiny_config(tiny_dataset), runs_root=tmp_path / "b", device="cpu")
    a, b = load_module(measured, Generator), load_module(plain, Generator)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_gan_train_with_missing_feature_weights_fails_before_making_a_run(tiny_dataset, tmp_path, capsys):
    code = main(["gan", "train", "--data", str(tiny_dataset), "--metric-every", "10",
                 "--feature-net", str(tmp_path / "inception_v3.pth"), "--runs", str(tmp_path / "runs")])
    assert code == 2
    assert INCEPTION_WEIGHTS_URL in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
