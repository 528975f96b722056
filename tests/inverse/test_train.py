"""Training: a fit on one view improves the silhouette, a killed run resumes to the same weights (from a checkpoint
of the trainer before the run kit too), the run folder holds what it promises, cameras move only when learned,
and bad input leaves nothing behind."""

import json
import math

import pytest
import torch

from ganverse3d.bundle import load_module, load_state, read_metadata, save_state
from ganverse3d.cli import main
from ganverse3d.geometry import Camera, template_sphere
from ganverse3d.inverse.cameras import wrap_degrees
from ganverse3d.inverse.losses import colour_loss, iou_loss
from ganverse3d.inverse.model import InverseGraphicsNet
from ganverse3d.inverse.train import (TrainConfig, Trainer, measure_framing, split_contents, spread_over_contents,
                                      train)
from ganverse3d.render import render_mesh

from inverse_helpers import DISTANCE, ELEVATION, FOV_Y, ellipsoid_content, write_multiview_dataset


def tiny_config(data, **overrides):
    settings = dict(data=str(data), iterations=4, batch=2, resolution=16, texture_height=4, holdout_fraction=0.3,
                    log_every=1, sample_every=2, eval_every=2, checkpoint_every=2)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_a_few_steps_fit_a_single_view_silhouette_better():
    mesh = template_sphere()
    verts, texture = ellipsoid_content(0)
    camera = Camera.create(60.0, ELEVATION, DISTANCE, FOV_Y)
    target = render_mesh(verts[None], mesh.faces, mesh.face_uvs, texture[None], camera, 32, soft=False)
    torch.manual_seed(0)
    net = InverseGraphicsNet(resolution=32, texture_height=8, feature_dim=32, base_channels=8, max_channels=16,
                             texture_channels=16, reference_distance=DISTANCE, fov_y=FOV_Y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)  # the paper's learning rate
    losses = []
    for _ in range(6):
        prediction = net(target.image, target.mask)
        render = render_mesh(prediction.verts, net.faces, net.face_uvs, prediction.texture, camera, 32)
        iou = iou_loss(render.soft_mask, target.mask)
        losses.append(iou.item())
        optimizer.zero_grad()
        (3 * iou + 20 * colour_loss(render.image, target.image, target.mask)).backward()
        optimizer.step()
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses


def crashed_run(data, root, monkeypatch):
    """The run folder of a tiny run killed in step 3: the checkpoint of step 2 exists, step 3's work is lost."""
    original_step = Trainer.train_step

    def crash_at_step_three(self):
        if self.step == 3:
            raise KeyboardInterrupt
        return original_step(self)

    monkeypatch.setattr(Trainer, "train_step", crash_at_step_three)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data), runs_root=root, device="cpu", progress=False)
    monkeypatch.setattr(Trainer, "train_step", original_step)
    return next((root / "inverse").iterdir())


def assert_same_training(bundle_a, bundle_b):
    """The runs of the two model bundles reached the same weights and cameras."""
    a, b = load_module(bundle_a, InverseGraphicsNet), load_module(bundle_b, InverseGraphicsNet)
    for (name, tensor_a), tensor_b in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(tensor_a, tensor_b), name
    cameras_a = json.loads((bundle_a.parent.parent / "cameras.json").read_text())
    cameras_b = json.loads((bundle_b.parent.parent / "cameras.json").read_text())
    assert cameras_a == cameras_b


def test_killed_run_resumes_to_identical_weights(multiview_dataset, tmp_path, monkeypatch):
    straight = train(tiny_config(multiview_dataset), runs_root=tmp_path / "a", device="cpu", progress=False)
    run_dir = crashed_run(multiview_dataset, tmp_path / "b", monkeypatch)
    resumed = train(resume=run_dir, device="cpu", progress=False)

    assert_same_training(straight, resumed)
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # step 3, logged before the crash, is logged once


def test_a_checkpoint_in_the_layout_of_the_trainer_before_the_run_kit_resumes_to_identical_weights(
        multiview_dataset, tmp_path, monkeypatch):
    straight = train(tiny_config(multiview_dataset), runs_root=tmp_path / "a", device="cpu", progress=False)
    run_dir = crashed_run(multiview_dataset, tmp_path / "b", monkeypatch)
    # What the trainer of commit 62517ea wrote: torch's global RNG as rng.torch, the batch RNG as rng.batches,
    # the optimiser's and the view RNG's states at the top of the metadata.
    state_path = run_dir / "checkpoints" / "state.safetensors"
    tensors, meta = load_state(state_path)
    tensors["rng.torch"] = tensors.pop("rng_torch_global")
    tensors["rng.batches"] = tensors.pop("rng_batches")
    save_state(state_path, tensors, {"step": meta["step"], "optimizer": meta["optimizers"]["optimizer"],
                                     "rng_views": meta["random"]["rng_views"]})
    resumed = train(resume=run_dir, device="cpu", progress=False)

    assert_same_training(straight, resumed)


def test_run_folder_holds_metrics_samples_cameras_and_a_self_describing_bundle(multiview_dataset, tmp_path):
    bundle = train(tiny_config(multiview_dataset), runs_root=tmp_path, device="cpu", progress=False)
    run_dir = bundle.parent.parent
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert {"loss", "train_iou", "iou_loss_view0", "iou_loss_view1", "camera_moved_deg_mean",
            "camera_moved_deg"} <= set(lines[0])
    assert set(lines[0]["camera_moved_deg"]) == {"0", "1", "2", "3"}
    assert lines[-1]["camera_moved_deg_mean"] > 0  # learned cameras moved
    assert {"heldout_iou", "heldout_iou_predicted_camera", "heldout_azimuth_error_deg"} <= set(lines[1])
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step0000000.png", "step0000002.png",
                                                                       "step0000004.png"]
    config = read_metadata(bundle)["config"]
    assert config["heldout_contents"] == [2]
    assert config["train"]["camera_mode"] == "learn"
    assert len(config["view_cameras"]) == 4 and len(config["framing"]["bin_fill"]) == 12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_starts_from_the_losses_of_the_cpu(multiview_dataset, tmp_path):
    losses = {}
    for device in ("cpu", "cuda"):
        bundle = train(tiny_config(multiview_dataset), runs_root=tmp_path / device, device=device, progress=False)
        lines = [json.loads(line) for line in (bundle.parent.parent / "metrics.jsonl").read_text().splitlines()]
        assert [line["step"] for line in lines] == [1, 2, 3, 4]
        losses[device] = lines[0]["loss"]  # the initial weights' loss (the same weights on both devices)
    # cuDNN's convolutions (TF32 on Ampere and later) round otherwise than the CPU's.
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=0.02)


def test_fixed_cameras_stay_put_and_single_view_training_renders_one_view(multiview_dataset, tmp_path):
    bundle = train(tiny_config(multiview_dataset, iterations=2, camera_mode="fixed", multiview=False),
                   runs_root=tmp_path, device="cpu", progress=False)
    lines = [json.loads(line) for line in (bundle.parent.parent / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["camera_moved_deg_max"] == 0
    assert "iou_loss_view1" not in lines[-1]


def test_split_holds_out_the_last_contents_but_keeps_one_for_training():
    assert split_contents([5, 1, 3, 2], 0.25) == ([1, 2, 3], [5])
    assert split_contents([7], 0.5) == ([7], [])
    assert split_contents(range(10), 0.0) == (list(range(10)), [])


def test_framing_measures_the_mask_box():
    masks = torch.zeros(2, 1, 10, 10, dtype=torch.uint8)
    masks[0, 0, 2:6, 1:9] = 255   # 8 wide, 4 tall, centre (5, 4)
    masks[1, 0, 4:6, 4:6] = 255   # 2 x 2, centre (5, 5)
    framing = measure_framing(masks, torch.tensor([0.0, 95.0]))
    assert framing["bin_fill"][0] == pytest.approx(0.8) and framing["bin_fill"][3] == pytest.approx(0.2)
    assert framing["bin_centre"][0] == pytest.approx([0.0, -0.1])
    assert framing["bin_fill"][1] is None


def test_bad_dataset_or_config_is_one_sentence_and_no_run_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["inverse", "train", "--data", str(tmp_path / "empty"), "--runs", str(tmp_path / "runs")])
    assert code == 2
    assert "not a multi-view dataset" in capsys.readouterr().err
    config = tmp_path / "cfg.toml"
    config.write_text("learning_rate = 0.1\n")
    code = main(["inverse", "train", "--data", str(tmp_path / "empty"), "--config", str(config),
                 "--runs", str(tmp_path / "runs")])
    assert code == 2
    assert "an unknown setting learning_rate" in capsys.readouterr().err
    config.write_text('iterations = "many"\n')
    code = main(["inverse", "train", "--data", str(tmp_path / "empty"), "--config", str(config),
                 "--runs", str(tmp_path / "runs")])
    assert code == 2
    assert "iterations" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_cli_trains_from_a_toml_config(tmp_path, capsys):
    data = tmp_path / "data"
    write_multiview_dataset(data, contents=2, views=2, resolution=16)
    config = tmp_path / "cfg.toml"
    config.write_text('iterations = 1\nbatch = 2\nresolution = 16\ntexture_height = 4\ncamera_mode = "fixed"\n')
    code = main(["inverse", "train", "--data", str(data), "--config", str(config), "--runs", str(tmp_path / "runs"),
                 "--device", "cpu"])
    assert code == 0
    run_dir = next((tmp_path / "runs" / "inverse").iterdir())
    assert json.loads((run_dir / "config.json").read_text())["camera_mode"] == "fixed"
    assert (run_dir / "checkpoints" / "inverse.safetensors").is_file()


def test_samples_and_monitoring_spread_over_contents():
    content_ids = torch.tensor([7, 7, 7, 3, 3, 9])
    spread = spread_over_contents(torch.tensor([0, 1, 2, 3, 4, 5]), content_ids)
    assert spread.tolist() == [3, 0, 5, 4, 1, 2]


def test_perceptual_term_joins_at_percept_start(multiview_dataset, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    vgg = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in torchvision.models.vgg16().features.state_dict().items()}, vgg)
    bundle = train(tiny_config(multiview_dataset, iterations=2, vgg_weights=str(vgg), percept_start=1),
                   runs_root=tmp_path, device="cpu", progress=False)
    first, second = [json.loads(line) for line in (bundle.parent.parent / "metrics.jsonl").read_text().splitlines()]
    assert "percept_view0" not in first   # step 0 trains colour-only
    assert second["percept_view0"] > 0 and second["percept_view1"] > 0


def _rendered_cameras(trainer, monkeypatch):
    """Runs one training step of ``trainer`` and returns (the cameras it rendered in, the model's camera
    estimates for the step's input and other-view images before the step, the view cameras of those images,
    the step's statistics)."""
    import ganverse3d.inverse.train as train_module

    seen = {}
    original_render, original_forward = train_module.render_mesh, type(trainer.model).forward

    def recording_render(*args, **kwargs):
        cameras = args[4]
        seen["cameras"] = Camera(*(getattr(cameras, name).detach() for name in ("azimuth", "elevation", "distance",
                                                                                "fov_y")))
        return original_render(*args, **kwargs)

    monkeypatch.setattr(train_module, "render_mesh", recording_render)
    batches_state, views_state = trainer.rng_batches.get_state(), trainer.rng_views.getstate()
    picks = torch.randint(len(trainer.train_indices), (trainer.config.batch,), generator=trainer.rng_batches)
    first = trainer.train_indices[picks]
    other = torch.tensor([trainer.dataset.other_view(int(i), trainer.rng_views) for i in first])
    trainer.rng_batches.set_state(batches_state)
    trainer.rng_views.setstate(views_state)
    indices = torch.cat((first, other))
    with torch.no_grad():
        images, masks = trainer.data.batch(indices, "cpu")
        estimates = original_forward(trainer.model, images, masks).camera
        view_cameras = trainer.cameras_of(indices)
    stats = trainer.train_step()
    return seen["cameras"], estimates, view_cameras, stats


def test_image_cameras_render_each_image_in_its_own_estimate_after_the_start_step(multiview_dataset, tmp_path,
                                                                                   monkeypatch):
    config = tiny_config(multiview_dataset, image_cameras=True, image_cameras_start=1, image_cameras_reach=180.0)
    trainer = Trainer(config, tmp_path, torch.device("cpu"), progress=False)

    rendered, estimates, view_cameras, _ = _rendered_cameras(trainer, monkeypatch)
    assert torch.equal(rendered.azimuth, view_cameras.azimuth)   # step 0: the paper's way

    rendered, estimates, view_cameras, _ = _rendered_cameras(trainer, monkeypatch)
    assert float(wrap_degrees(rendered.azimuth - estimates.azimuth).max()) < 1e-3
    for name in ("elevation", "distance"):
        assert torch.allclose(getattr(rendered, name), getattr(estimates, name), atol=1e-4), name
    assert not torch.allclose(rendered.azimuth, view_cameras.azimuth, atol=1.0)


def test_image_cameras_pull_the_view_cameras_toward_their_images_estimates(multiview_dataset, tmp_path):
    """With every image term off, only the camera loss moves the view cameras, and only in image-camera mode
    (the paper's way trains the head toward the view cameras, never the reverse)."""
    silent = dict(iou_weight=0.0, colour_weight=0.0, laplacian_weight=0.0, flatten_weight=0.0, move_weight=0.0)
    for image_cameras in (False, True):
        config = tiny_config(multiview_dataset, image_cameras=image_cameras, image_cameras_start=0, **silent)
        trainer = Trainer(config, tmp_path / str(image_cameras), torch.device("cpu"), progress=False)
        trainer.train_step()
        deltas = torch.cat([parameter.detach() for parameter in trainer.cameras.parameters()])
        assert bool(deltas.abs().max() > 0) == image_cameras, (image_cameras, deltas)


def test_image_cameras_runs_are_named_and_configured_from_the_cli(multiview_dataset, tmp_path):
    code = main(["inverse", "train", "--data", str(multiview_dataset), "--image-cameras", "--iterations", "1",
                 "--batch", "2", "--resolution", "16", "--runs", str(tmp_path), "--device", "cpu"])
    assert code == 0
    run_dir = next((tmp_path / "inverse").iterdir())
    assert run_dir.name.endswith("-learn-image-cameras")
    assert json.loads((run_dir / "config.json").read_text())["image_cameras"] is True


def test_image_cameras_out_of_reach_of_their_views_camera_fall_back_to_it(multiview_dataset, tmp_path, monkeypatch):
    config = tiny_config(multiview_dataset, image_cameras=True, image_cameras_start=0, image_cameras_reach=5.0)
    trainer = Trainer(config, tmp_path, torch.device("cpu"), progress=False)
    rendered, estimates, view_cameras, stats = _rendered_cameras(trainer, monkeypatch)
    strays = wrap_degrees(estimates.azimuth - view_cameras.azimuth) > 5
    assert bool(strays.any())   # an untrained head does
    kept = ~strays & ((estimates.elevation - view_cameras.elevation).abs() <= 5)
    assert stats["image_cameras_kept"] == pytest.approx(float(kept.float().mean()))
    assert torch.equal(rendered.azimuth[strays], view_cameras.azimuth[strays])
    assert float(wrap_degrees(rendered.azimuth - view_cameras.azimuth).max()) <= 5 + 1e-4
    assert float((rendered.elevation - view_cameras.elevation).abs().max()) <= 5 + 1e-4


def test_bfloat16_runs_the_network_and_perceptual_term_under_autocast_close_to_float32(multiview_dataset, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    vgg = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in torchvision.models.vgg16().features.state_dict().items()}, vgg)

    def first_step(precision: str) -> dict:
        config = tiny_config(multiview_dataset, vgg_weights=str(vgg), percept_start=0, image_cameras=True,
                             image_cameras_start=0, precision=precision)
        trainer = Trainer(config, tmp_path, torch.device("cpu"), progress=False)
        return {name: float(value) for name, value in trainer.train_step().items()}

    full, half = first_step("float32"), first_step("bfloat16")
    assert set(half) == set(full) and all(math.isfinite(value) for value in half.values())
    # bfloat16 keeps 8 bits of mantissa: the terms agree to a few per cent, not to float32's last bits (the
    # untrained shape head's zero start gives both the same silhouette, so the IoU term is equal).
    for name in ("loss", "colour_view0", "percept_view0", "camera"):
        assert half[name] != full[name], name
        assert half[name] == pytest.approx(full[name], rel=0.05), name
