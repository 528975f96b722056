"""Shared fixtures of the parts tests: a tiny generator on disk, an annotation folder painted by a known rule."""

import pytest

from ganverse3d.bundle import save_module

from parts_helpers import paint_known_labels, tiny_generator


@pytest.fixture(scope="session")
def generator_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("generator") / "G.safetensors"
    save_module(path, tiny_generator())
    return path


@pytest.fixture(scope="session")
def other_generator_file(tmp_path_factory):
    """Another architecture (wider layers): its features do not fit an interpreter of the tiny one."""
    from ganverse3d.stylegan2.networks import Generator
    import torch

    torch.manual_seed(5)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=32,
                  num_mapping_layers=2, img_content_shape=(12, 16)).eval()
    path = tmp_path_factory.mktemp("other") / "G2.safetensors"
    save_module(path, G)
    return path


@pytest.fixture(scope="session")
def painted_annotations(tmp_path_factory, generator_file):
    """16 annotated images of the tiny generator, their labels painted by :func:`known_labels`."""
    from ganverse3d.parts.annotations import write_annotation_templates

    folder = tmp_path_factory.mktemp("annotations") / "ann"
    write_annotation_templates(folder, str(generator_file), count=16, seed=0, device="cpu")
    paint_known_labels(folder)
    return folder
