"""`parts label`: a GAN multi-view dataset's parts from its own codes, by the style interpreter."""

import numpy as np
import pytest
import torch
from PIL import Image

from safetensors.torch import load_file

from ganverse3d.bundle import save_module
from ganverse3d.dataset import MultiViewDataset
from ganverse3d.dataset.segment import Instances, Segmenter
from ganverse3d.dataset.synth import synthesize
from ganverse3d.dataset.views import write_view_candidates
from ganverse3d.errors import InputError
from ganverse3d.parts import CLASSES, StyleInterpreter, feature_dims, pixel_features
from ganverse3d.parts.label import label_multiview
from ganverse3d.parts.train_branch import view_part_labels
from ganverse3d.stylegan2.load import load_generator

from parts_helpers import tiny_generator


class LeftHalf(Segmenter):
    """Every image holds one car: its left half."""

    def segment(self, images):
        masks = torch.zeros(len(images), 1, *images.shape[-2:], dtype=torch.bool)
        masks[..., : images.shape[-1] // 2] = True
        return [Instances(mask, torch.ones(1)) for mask in masks]

    def description(self):
        return {"kind": "left half"}


@pytest.fixture
def gan_views(tmp_path, generator_file):
    folder = tmp_path / "views"
    write_view_candidates(load_generator(generator_file), generator_file, folder, 6, contents=2, seed=3)
    (folder / "views.toml").write_text('candidates = "candidates.safetensors"\n[views]\n0 = { bin = 0 }\n'
                                       '2 = { bin = 3 }\n')
    out = tmp_path / "gan-mv"
    synthesize(out, generator_file, folder / "views.toml", contents=3, segmenter=LeftHalf(), batch=4, progress=False)
    return out


@pytest.fixture
def interpreter_file(tmp_path, generator_file):
    torch.manual_seed(1)
    path = tmp_path / "interpreter.safetensors"
    save_module(path, StyleInterpreter(feature_dims(tiny_generator()), list(CLASSES), members=3).eval())
    return path


def test_every_image_gets_the_vote_on_its_own_codes_within_its_mask(gan_views, generator_file, interpreter_file):
    assert label_multiview(gan_views, generator_file, interpreter_file, progress=False) == 6
    dataset = MultiViewDataset(gan_views)
    G = load_generator(generator_file).eval()
    interpreter = StyleInterpreter(feature_dims(G), list(CLASSES), members=3)
    interpreter.load_state_dict(load_file(str(interpreter_file)))
    view_codes = load_file(str(gan_views / "view_codes.safetensors"))
    line = dataset.meta[3]
    content = load_file(str(gan_views / line["latent"]))["ws"]
    view = view_codes["ws"][view_codes["view_ids"].tolist().index(line["view_id"])]
    layers = dataset.manifest["source"]["view_layers"]
    ws = torch.cat((view[:layers], content[layers:]))[None]
    expected = interpreter.eval().label(pixel_features(G, ws))[0][0]
    expected[:, expected.shape[1] // 2:] = 0
    written = np.asarray(Image.open(gan_views / "parts" / line["image"].split("/")[-1]))
    assert np.array_equal(written, expected.numpy())
    assert torch.equal(view_part_labels(dataset)[3].long(), expected - 1)
    assert label_multiview(gan_views, generator_file, interpreter_file, progress=False) == 0  # all done


def test_another_generator_is_one_sentence_and_labels_nothing(gan_views, interpreter_file, tmp_path):
    other = tmp_path / "other.safetensors"
    save_module(other, tiny_generator(seed=4))
    with pytest.raises(InputError, match="generator.*does not remake"):
        label_multiview(gan_views, other, interpreter_file, progress=False)
    assert not (gan_views / "parts").exists() or not any((gan_views / "parts").iterdir())


def test_the_command_labels_a_dataset_and_refuses_a_world_one(gan_views, generator_file, interpreter_file, tmp_path,
                                                               capsys):
    from ganverse3d.cli import main
    from ganverse3d.dataset.world_multiview import write_world_multiview

    assert main(["parts", "label", "--data", str(gan_views), "--generator", str(generator_file), "--interpreter",
                 str(interpreter_file)]) == 0
    assert f"Wrote the part labels of 6 images to {gan_views}/parts." in capsys.readouterr().out
    world = tmp_path / "world"
    write_world_multiview(world, cars=1, views=2, resolution=16, seed=0, progress=False)
    assert main(["parts", "label", "--data", str(world), "--generator", str(generator_file), "--interpreter",
                 str(interpreter_file)]) == 2
    assert "not a GAN multi-view dataset" in capsys.readouterr().err
    assert not (world / "parts").exists()


def test_a_generator_of_another_shape_is_one_sentence(gan_views, interpreter_file, tmp_path):
    from ganverse3d.stylegan2.networks import Generator

    torch.manual_seed(0)
    other = tmp_path / "wide.safetensors"
    save_module(other, Generator(z_dim=8, w_dim=16, img_resolution=16, img_channels=3, channel_base=128,
                                 channel_max=16, num_mapping_layers=2, img_content_shape=(12, 16)).eval())
    with pytest.raises(InputError, match="generator.*does not make the images"):
        label_multiview(gan_views, other, interpreter_file, progress=False)
