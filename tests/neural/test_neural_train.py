"""`ganverse3d.neural.train` on tiny files: a 16-px generator with its view candidates and annotation, a tiny
untrained inverse network and segmenter. Pins the warm-up's learning, the run folder and the resume."""

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganverse3d.bundle import load_module, read_metadata
from ganverse3d.cli import main
from ganverse3d.neural import StyleGANR
from ganverse3d.neural.train import Trainer, TrainConfig, train
from ganverse3d.runs import seeded_rng
from ganverse3d.stylegan2.networks import Generator

from dataset.dataset_helpers import tiny_generator
from neural.neural_helpers import write_training_kit

WARMUP_KEYS = {"loss", "loss_w", "entropy"}
FINETUNE_KEYS = {"loss", "loss_shape", "loss_texture", "loss_background", "loss_pair", "loss_camera",
                 "loss_adversarial", "loss_D"}


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A tiny untrained generator (16-px canvas, 12 x 16 content), its annotated views, inverse network and
    segmenter (write_training_kit)."""
    return write_training_kit(tmp_path_factory.mktemp("kit"), tiny_generator())


def config(kit, **fields) -> TrainConfig:
    settings = dict(view_dims=4, hidden=16, warmup_steps=3, finetune_steps=2, batch=2, log_every=1, sample_every=100,
                    checkpoint_every=100, metric_every=0)
    return TrainConfig(**kit, **{**settings, **fields})


def test_warm_up_lowers_the_code_loss_on_a_fixed_batch(kit):
    trainer = Trainer(config(kit, lr=3e-3), None, "cpu", progress=False)
    examples = trainer.examples(4, seeded_rng(9))

    def loss_w() -> float:
        with torch.no_grad():
            ws = trainer.model.mapping(examples.camera_vector, examples.verts, examples.texture, examples.background,
                                       examples.masks)
        return float((ws - examples.ws).square().mean())

    start = loss_w()
    for _ in range(20):
        trainer.warmup_step(examples)
    assert loss_w() < 0.5 * start


def lines(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_writes_its_folder_and_a_resume_continues_from_the_checkpoint(kit, tmp_path):
    bundle = train(config(kit), runs_root=tmp_path, device="cpu", progress=False)
    run_dir = bundle.parents[1]
    assert json.loads((run_dir / "config.json").read_text())["finetune_steps"] == 2
    losses = [line for line in lines(run_dir) if "loss" in line]
    assert [line["step"] for line in losses] == [1, 2, 3, 4, 5]
    assert all(WARMUP_KEYS <= set(line) for line in losses[:3])
    assert all(FINETUNE_KEYS <= set(line) and "loss_w" not in line for line in losses[3:])
    view_dims = json.loads((run_dir / "view_dims.json").read_text())
    assert view_dims["view_dims"] == 4 and view_dims["of"] == 16 and len(view_dims["correlation"]) == 16
    # Keeping every dimension of the view code is the full code: the pose net reads it exactly as itself.
    assert next(row for row in view_dims["sweep"] if row["count"] == 16)["azimuth_error"] == 0
    assert sorted(path.name for path in (run_dir / "samples").iterdir()) == ["samples0000000.png",
                                                                            "samples0000005.png"]
    model = load_module(bundle, StyleGANR, device="cpu")
    assert model.resolution == 16 and model.mapping.view_indices.shape == (4,)
    assert read_metadata(bundle)["provenance"]["fine_tuned_steps"] == 2

    assert train(resume=run_dir, finetune_steps=4, device="cpu", progress=False) == bundle
    resumed = [line for line in lines(run_dir) if "loss" in line]
    assert [line["step"] for line in resumed] == [1, 2, 3, 4, 5, 6, 7]
    assert resumed[:5] == losses and all(FINETUNE_KEYS <= set(line) for line in resumed[5:])
    assert read_metadata(bundle)["provenance"]["fine_tuned_steps"] == 4
    assert json.loads((run_dir / "config.json").read_text())["finetune_steps"] == 4


def test_train_without_views_leaves_no_run_folder(tmp_path, capsys):
    assert main(["neural", "train", "--runs", str(tmp_path / "runs"), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == "Error: Give --views (a view annotation) or --resume (a run folder)."
    assert not (tmp_path / "runs").exists()


def assert_teacher_reads_rows(trainer: Trainer, canvas: int, rows: slice) -> None:
    """The 16-px inverse network reads exactly ``rows`` of G0-sized images and masks, area-resized to 16 x 16."""
    images, masks = torch.rand(2, 3, canvas, canvas), (torch.rand(2, 1, canvas, canvas) > 0.5).float()
    for seen, given in zip(trainer.teacher_view(images, masks), (images, masks)):
        torch.testing.assert_close(seen, F.interpolate(given[:, :, rows], size=(16, 16), mode="area"), rtol=0, atol=0)


def test_the_teacher_reads_the_content_box_of_a_generator_its_own_size(kit):
    # 16-px canvas, 12 x 16 content, 16-px inverse network: rows 2:14 stretched to 16 x 16, as `inverse train`
    # resizes a dataset's 12 x 16 images.
    assert_teacher_reads_rows(Trainer(config(kit), None, "cpu", progress=False), 16, slice(2, 14))


def test_a_generator_larger_than_the_teacher_is_read_through_its_content_box(tmp_path):
    # The paper's path: a 512-px canvas with 512 x 384 content, read by a 64-px inverse network; here 32 px with
    # 24 x 32 content and a 16-px teacher.
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, img_resolution=32, img_channels=3, channel_base=128, channel_max=16,
                  num_mapping_layers=2, img_content_shape=(24, 32)).eval()
    kit = write_training_kit(tmp_path, G, inverse_resolution=16)
    trainer = Trainer(config(kit), None, "cpu", progress=False)
    assert_teacher_reads_rows(trainer, 32, slice(4, 28))
    # The sample grids put the teacher's square view back into the content box of a black canvas.
    canvas = trainer.model.to_canvas(torch.ones(1, 3, 16, 16))
    assert canvas.shape == (1, 3, 32, 32)
    assert bool((canvas[:, :, 4:28] == 1).all())
    assert float(canvas[:, :, :4].abs().sum()) == float(canvas[:, :, 28:].abs().sum()) == 0

    bundle = train(config(kit, warmup_steps=1, finetune_steps=1, sample_every=1), runs_root=tmp_path / "runs",
                   device="cpu", progress=False)
    # 8 examples x (G0 | DIB-R | StyleGAN-R | 6 azimuths), 32-px tiles 2 px apart.
    assert Image.open(bundle.parents[1] / "samples" / "samples0000002.png").size == (9 * 34 - 2, 8 * 34 - 2)


def test_bfloat16_fine_tuning_runs_stylegan_under_autocast_close_to_float32(kit):
    def one_fine_tuning_step(precision: str) -> tuple[dict, dict]:
        trainer = Trainer(config(kit, precision=precision, warmup_steps=1), None, "cpu", progress=False)
        trainer.step = 1  # past the warm-up: the step fine-tunes
        stats = trainer.train_step()
        return stats, {name: value.detach().clone() for name, value in trainer.model.named_parameters()}

    (stats32, weights32), (stats16, weights16) = one_fine_tuning_step("float32"), one_fine_tuning_step("bfloat16")
    assert FINETUNE_KEYS == set(stats16) and all(bool(torch.isfinite(value)) for value in stats16.values())
    # bfloat16 keeps 8 bits of mantissa: the losses agree to a few per cent, not to float32's last bits.
    assert stats16["loss"] != stats32["loss"]
    torch.testing.assert_close(stats16["loss"], stats32["loss"], rtol=0.05, atol=0)
    assert any(not torch.equal(weights16[name], weights32[name]) for name in weights32)
