"""Fig. 2 (view codes x content codes) and Appendix B (per-block images) on a tiny generator."""

import pytest
import torch
from PIL import Image

from ganverse3d.bundle import save_module
from ganverse3d.cli import main
from ganverse3d.stylegan2.networks import Generator, upsample2d
from ganverse3d.world.features import WorldFeatureNet
from ganverse3d.stylegan2.views import (default_view_layers, mix_view_and_content, view_content_sheet,
                                       view_mixing_loss)


def tiny_generator():
    torch.manual_seed(0)
    return Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                     num_mapping_layers=2).eval()


def test_default_view_layers_is_the_papers_four_of_sixteen():
    assert default_view_layers(16) == 4 and default_view_layers(8) == 2 and default_view_layers(2) == 1
    assert default_view_layers(10) == 3 and default_view_layers(18) == 5  # 2.5 and 4.5 round up


def test_mixing_w_star_equals_mixing_ws_at_the_same_crossover():
    G = tiny_generator()
    ws_a, ws_b = G.mapping(torch.randn(3, 8)), G.mapping(torch.randn(3, 8))
    for k in range(1, G.num_ws):
        mixed_ws = torch.cat((ws_a[:, :k], ws_b[:, k:]), dim=1)
        expected = G.synthesis(mixed_ws)
        assert torch.allclose(G.synthesis.from_styles(mix_view_and_content(G, ws_a, ws_b, k)), expected, atol=1e-6)


def test_sheet_columns_share_the_view_and_rows_the_content():
    G = tiny_generator()
    sheet = view_content_sheet(G, num_views=3, num_contents=2, view_layers=2, seed=5).reshape(2, 3, 3, 16, 16)
    assert sheet.min() >= 0 and sheet.max() <= 1
    # Every tile differs (views differ along rows, contents down columns).
    flat = sheet.reshape(6, -1)
    assert torch.cdist(flat, flat).add(torch.eye(6)).min() > 1e-3
    # Regenerating one tile from its two codes by hand gives the same pixels.
    generator = torch.Generator().manual_seed(5)
    z_views, z_contents = torch.randn(3, 8, generator=generator), torch.randn(2, 8, generator=generator)
    ws_view, ws_content = G.mapping(z_views[2:3], truncation_psi=0.7), G.mapping(z_contents[1:2], truncation_psi=0.7)
    tile = (G.synthesis(torch.cat((ws_view[:, :2], ws_content[:, 2:]), 1)) + 1) / 2
    assert torch.allclose(sheet[1, 2], tile[0].clamp(0, 1), atol=1e-6)


def test_block_images_add_up_to_the_image():
    G = tiny_generator()
    ws = G.mapping(torch.randn(2, 8))
    blocks = G.synthesis.block_images(ws)
    assert [b.shape[-1] for b in blocks] == G.synthesis.block_resolutions
    image = blocks[0]
    for block in blocks[1:]:
        image = upsample2d(image, G.synthesis.b8.resample_filter) + block
    assert torch.allclose(image, G.synthesis(ws), atol=1e-5)


def test_views_and_layers_commands_write_sheets(tmp_path):
    save_module(tmp_path / "G.safetensors", tiny_generator())
    assert main(["gan", "views", "--generator", str(tmp_path / "G.safetensors"), "-o", str(tmp_path / "v.png"),
                 "--views", "4", "--contents", "3", "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "v.png").size == (4 * 18 - 2, 3 * 18 - 2)
    assert main(["gan", "layers", "--generator", str(tmp_path / "G.safetensors"), "-o", str(tmp_path / "l.png"),
                 "--samples", "2", "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "l.png").size == (4 * 18 - 2, 2 * 18 - 2)  # blocks 4, 8, 16 and the image
    assert main(["gan", "views", "--generator", str(tmp_path / "G.safetensors"), "-o", str(tmp_path / "x.png"),
                 "--view-layers", "9", "--device", "cpu"]) == 2
    assert not (tmp_path / "x.png").exists()


def tiny_reader():
    torch.manual_seed(1)
    reader = WorldFeatureNet(["sedan", "suv", "pickup"], resolution=16, width=4, feature_dim=8)
    with torch.no_grad():
        reader.heads.weight.mul_(1000)  # untrained heads read every image as nearly uniform
    return reader.eval().requires_grad_(False)


def test_view_mixing_loss_reads_the_view_from_the_first_entries_and_the_car_from_the_rest():
    G, reader = tiny_generator(), tiny_reader()
    ws_a, ws_b = G.mapping(torch.randn(4, 8)), G.mapping(torch.randn(4, 8))
    split = 2
    same, _ = view_mixing_loss(G, reader, ws_a, ws_a, split)
    assert same.item() == 0
    # Codes that differ only after the split: the mix is the content's own image, so the body type matches
    # exactly and only the view can be off; the other way round only the body type can be off.
    late = torch.cat((ws_a[:, :split], ws_b[:, split:]), dim=1)
    _, stats = view_mixing_loss(G, reader, ws_a, late, split)
    assert stats["view_mixing_body_kl"] == 0
    assert stats["view_mixing_azimuth_kl"] > 0 and stats["view_mixing_elevation_deg"] > 0
    early = torch.cat((ws_b[:, :split], ws_a[:, split:]), dim=1)
    _, stats = view_mixing_loss(G, reader, early, ws_a, split)
    assert stats["view_mixing_body_kl"] > 0
    assert stats["view_mixing_azimuth_kl"] == 0 and stats["view_mixing_elevation_deg"] == 0


def test_view_mixing_loss_is_a_kl_and_trains_only_the_generator():
    G, reader = tiny_generator(), tiny_reader()
    ws_a, ws_b = G.mapping(torch.randn(4, 8)), G.mapping(torch.randn(4, 8))
    loss, stats = view_mixing_loss(G, reader, ws_a, ws_b, 3)
    stats = {name: value.item() for name, value in stats.items()}
    assert loss.item() == pytest.approx(stats["view_mixing_azimuth_kl"] + stats["view_mixing_body_kl"]
                                        + stats["view_mixing_elevation_deg"] / 10, rel=1e-5)
    # The azimuth term by hand: KL(view image's bins || mix's bins), averaged over the batch.
    with torch.no_grad():
        _, target, _ = reader((G.synthesis(ws_a, noise_mode="const") + 1).div(2).clamp(0, 1))
        mixed = torch.cat((ws_a[:, :3], ws_b[:, 3:]), dim=1)
        _, azimuth, _ = reader((G.synthesis(mixed, noise_mode="const") + 1).div(2).clamp(0, 1))
    p = target.softmax(1)
    expected = (p * (p.log() - azimuth.log_softmax(1))).sum(1).mean()
    assert stats["view_mixing_azimuth_kl"] == pytest.approx(expected.item(), rel=1e-3)  # float32 cancellation
    loss.backward()
    assert all(p.grad is not None for p in G.synthesis.parameters() if p.requires_grad)
    assert all(p.grad is None for p in reader.parameters())
    with pytest.raises(ValueError, match="view_layers"):
        view_mixing_loss(G, reader, ws_a, ws_b, G.num_ws)
