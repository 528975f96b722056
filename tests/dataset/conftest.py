"""Shared fixtures of the dataset tests: a tiny generator on disk, its view candidates, annotations."""

import pytest
import torch

from ganverse3d.bundle import save_module
from ganverse3d.dataset.segment import WorldSegmenterNet
from ganverse3d.stylegan2.views import default_view_layers

from dataset_helpers import NUM_CANDIDATES, tiny_generator, write_annotation


@pytest.fixture(scope="session")
def generator_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("generator") / "G.safetensors"
    save_module(path, tiny_generator())
    return path


@pytest.fixture(scope="session")
def view_layers():
    return default_view_layers(tiny_generator().num_ws)


@pytest.fixture
def views_folder(tmp_path, generator_file):
    """A folder with candidates.safetensors for the tiny generator and a views.toml choosing views 0, 2, 5."""
    from ganverse3d.dataset.views import write_view_candidates
    from ganverse3d.stylegan2.load import load_generator

    folder = tmp_path / "views"
    write_view_candidates(load_generator(generator_file), generator_file, folder, NUM_CANDIDATES, contents=2, seed=3)
    (folder / "views.toml").unlink()
    write_annotation(folder, {0: 0, 2: 3, 5: 9})
    return folder


@pytest.fixture(scope="session")
def segmenter_file(tmp_path_factory):
    """A randomly initialised world segmenter bundle for the tiny generator's images, its output bias set to
    the median logit of such images, so that its masks vary with the image and some pass the filter."""
    from ganverse3d.dataset.synth import content_codes
    from ganverse3d.dataset.views import render_view_content

    G = tiny_generator()
    ws = content_codes(G, 123, range(8), 0.7)
    images = render_view_content(G, ws.roll(1, dims=0), ws, 2)
    torch.manual_seed(1)
    net = WorldSegmenterNet(resolution=16, width=4).eval()
    with torch.no_grad():
        net.head.bias -= net(images).median()
    path = tmp_path_factory.mktemp("segmenter") / "seg.safetensors"
    save_module(path, net)
    return path
