"""The paper-scale path (configs/paper/, docs/training_at_scale.md) on the CPU, with randomly initialised
networks of the paper's shapes, so that it cannot rot unseen: the configs load and pass their checks; StyleGAN2
config-f at 512 x 384 with 16 W* entries makes a view-mixed image (the first 4 entries the view) and takes a
training step's forward and backward for G and D on one sample in bfloat16 (a whole step at batch 32 would take
minutes on a CPU); COCO Mask R-CNN segments that image; the inverse network trains two steps with the paper's
settings; StyleGAN-R (configs/paper/neural.toml) on that generator and a 64-px inverse network takes a warm-up and a
fine-tuning step.
"""

import tomllib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganverse3d import runs
from ganverse3d.bundle import save_module
from ganverse3d.dataset.segment import MaskRCNNSegmenter
from ganverse3d.dataset.views import Candidates, generator_fingerprint, sample_codes, save_candidates
from ganverse3d.inverse.model import InverseGraphicsNet
from ganverse3d.inverse.train import TrainConfig as InverseConfig, Trainer as InverseTrainer
from ganverse3d.neural.train import TrainConfig as NeuralConfig, Trainer as NeuralTrainer
from ganverse3d.stylegan2.networks import Discriminator, Generator, num_ws_at
from ganverse3d.stylegan2.train import TrainConfig as GANConfig
from ganverse3d.stylegan2.views import PAPER_NUM_WS, PAPER_VIEW_LAYERS, mix_view_and_content

from dataset.dataset_helpers import write_annotation
from inverse.inverse_helpers import write_multiview_dataset

PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper"


def read_toml(name: str) -> dict:
    return tomllib.loads((PAPER / name).read_text())


@pytest.fixture(scope="module")
def config_f() -> tuple[Generator, Discriminator]:
    """Config-f generator (512 x 384 content in 512 x 512) and discriminator, randomly initialised."""
    gan = read_toml("gan.toml")
    torch.manual_seed(0)
    G = Generator(z_dim=gan["z_dim"], w_dim=gan["w_dim"], img_resolution=gan["resolution"], img_channels=3,
                  channel_base=gan["channel_base"], channel_max=gan["channel_max"],
                  num_mapping_layers=gan["mapping_layers"], img_content_shape=(384, 512))
    D = Discriminator(img_resolution=gan["resolution"], img_channels=3, channel_base=gan["channel_base"],
                      channel_max=gan["channel_max"])
    return G, D


def test_paper_configs_load_and_pass_their_checks():
    gan = GANConfig(data="unused", **runs.check_values(GANConfig, read_toml("gan.toml"), "gan.toml"))
    gan.check()
    inverse = InverseConfig(data="unused", **runs.read_config_file(InverseConfig, PAPER / "inverse.toml"))
    inverse.check()
    neural = NeuralConfig(**runs.read_config_file(NeuralConfig, PAPER / "neural.toml"))
    neural.check()
    assert (neural.warmup_steps, neural.finetune_steps, neural.batch, neural.view_dims) == (700, 2500, 16, 144)
    assert neural.lr == neural.finetune_lr == 1e-5 and neural.precision == "bfloat16"
    assert (inverse.iterations, inverse.batch, inverse.lr, inverse.percept_start) == (200_000, 16, 1e-4, 3000)
    assert (inverse.iou_weight, inverse.colour_weight, inverse.laplacian_weight, inverse.flatten_weight,
            inverse.move_weight, inverse.percept_weight) == (3, 20, 5, 5, 2.5, 0.5)
    dataset = read_toml("dataset.toml")
    assert num_ws_at(gan.resolution) == dataset["num_ws"] == PAPER_NUM_WS
    assert dataset["view_layers"] == PAPER_VIEW_LAYERS
    assert (dataset["views"], dataset["contents"]) == (39, 6000)
    # The global batches split evenly on 1, 2, 4 and 8 GPUs.
    assert gan.batch % 8 == 0 and inverse.batch % 8 == 0 and neural.batch % 8 == 0


def test_config_f_mixes_views_and_takes_a_training_step_on_one_sample(config_f):
    G, D = config_f
    assert G.num_ws == 16
    with torch.no_grad():
        ws_view, ws_content = G.mapping(torch.randn(2, G.z_dim)).split(1)
        image = G.synthesis.from_styles(mix_view_and_content(G, ws_view, ws_content, PAPER_VIEW_LAYERS))
    assert image.shape == (1, 3, 512, 512) and torch.isfinite(image).all()

    # G's loss through D, then D's loss with R1 on a real, each backward, in gan.toml's bfloat16 autocast (float32
    # takes 2.3 times as long, 24 s on one core): every parameter gets a finite gradient.
    assert read_toml("gan.toml")["precision"] == "bfloat16"
    ws = G.mapping(torch.randn(1, G.z_dim))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        F.softplus(-D(G.synthesis(ws, noise_mode="random")).float()).mean().backward()
        real = (torch.rand(1, 3, 512, 512) * 2 - 1).requires_grad_(True)
        logits = D(real).float()
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    (F.softplus(-logits).mean() + grad.square().sum() * 5).backward()
    for network in (G, D):
        for name, parameter in network.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_mask_rcnn_segments_a_config_f_image(config_f, tmp_path):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), tmp_path / "maskrcnn.pth")
    segmenter = MaskRCNNSegmenter(tmp_path / "maskrcnn.pth")
    G, _ = config_f
    with torch.no_grad():
        image = (G(torch.randn(1, G.z_dim))[:, :, 64:448] + 1) / 2  # the 384 x 512 content
    (found,) = segmenter.segment(image.clamp(0, 1))
    assert found.masks.shape[-2:] == (384, 512)


def test_inverse_network_trains_two_steps_with_the_paper_settings(tmp_path):
    write_multiview_dataset(tmp_path / "data")
    settings = {**runs.read_config_file(InverseConfig, PAPER / "inverse.toml"), "iterations": 2, "batch": 2,
                "log_every": 1, "sample_every": 2, "eval_every": 2, "checkpoint_every": 2}
    bundle = InverseTrainer.train(InverseConfig(data=str(tmp_path / "data"), **settings), runs_root=tmp_path / "runs",
                                  device="cpu", progress=False)
    lines = runs.read_metrics(bundle.parents[1] / "metrics.jsonl")
    assert [line["step"] for line in lines if "loss" in line] == [1, 2]
    assert all(torch.isfinite(torch.tensor(line["loss"])) for line in lines if "loss" in line)


def test_stylegan_r_takes_a_warm_up_and_a_fine_tuning_step_at_the_paper_shapes(config_f, tmp_path):
    G, _ = config_f
    save_module(tmp_path / "G.safetensors", G)
    codes = sample_codes(G, 3, torch.Generator().manual_seed(0), truncation=0.7)
    save_candidates(tmp_path / "candidates.safetensors",
                    Candidates(codes, PAPER_VIEW_LAYERS, 0.7, 0, generator_fingerprint(G)), tmp_path / "G.safetensors")
    inverse = read_toml("inverse.toml")
    torch.manual_seed(0)
    save_module(tmp_path / "inverse.safetensors",
                InverseGraphicsNet(resolution=inverse["resolution"], texture_height=inverse["texture_height"]))
    # The world segmenter stands in for Mask R-CNN (segmented above), a minute quicker on the CPU.
    settings = {**runs.read_config_file(NeuralConfig, PAPER / "neural.toml"), "warmup_steps": 1, "finetune_steps": 1,
                "batch": 2, "views": write_annotation(tmp_path, {0: 0, 1: 3, 2: 9}),
                "generator": str(tmp_path / "G.safetensors"), "inverse": str(tmp_path / "inverse.safetensors"),
                "segmenter": "world"}
    trainer = NeuralTrainer(NeuralConfig(**settings), None, "cpu", progress=False)
    assert trainer.model.mapping.view_indices.shape == (144,) and trainer.model.mapping.num_ws == 16
    warmup, finetune = trainer.train_step(), trainer.train_step()
    assert set(warmup) == {"loss", "loss_w", "entropy"}
    assert {"loss_shape", "loss_texture", "loss_background", "loss_pair"} <= set(finetune)
    assert all(torch.isfinite(value) for value in (*warmup.values(), *finetune.values()))
