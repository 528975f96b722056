"""StyleGAN2 networks: shapes, the W* style API, truncation, noise, features, discriminator."""

import pytest
import torch

from ganverse3d.stylegan2 import Discriminator, Generator


def tiny_generator(resolution=32, **kwargs):
    torch.manual_seed(0)
    generator = Generator(z_dim=16, w_dim=12, img_resolution=resolution, img_channels=3, channel_base=128,
                          channel_max=16, num_mapping_layers=2, **kwargs)
    with torch.no_grad():  # non-zero noise strengths so that the noise modes differ
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
    return generator.eval()


def test_shapes_of_a_32px_generator():
    generator = tiny_generator(32)
    assert generator.num_ws == 8
    z = torch.randn(3, 16)
    ws = generator.mapping(z)
    assert ws.shape == (3, 8, 12)
    img = generator.synthesis(ws)
    assert img.shape == (3, 3, 32, 32)
    assert torch.equal(generator(z), img)
    assert generator.img_crop == (0, 32, 0, 32)
    # channels(res) = min(channel_base // res, channel_max): 16 up to 8 px, 8 at 16 px, 4 at 32 px.
    assert generator.synthesis.channels == {4: 16, 8: 16, 16: 8, 32: 4}


def test_rectangular_content_box():
    generator = tiny_generator(64, img_content_shape=(48, 64))
    assert generator.img_crop == (8, 56, 0, 64)
    img = generator(torch.randn(2, 16))
    assert img.shape == (2, 3, 64, 64)
    assert generator.crop_to_content(img).shape == (2, 3, 48, 64)
    assert torch.equal(generator.crop_to_content(img), img[:, :, 8:56])
    assert generator.init_kwargs["img_content_shape"] == [48, 64]
    with pytest.raises(ValueError):
        tiny_generator(32, img_content_shape=(40, 32))


def test_official_car_model_layout():
    # The 512-px car config, built on the meta device (no memory): 16 ws, 15 conv layers.
    with torch.device("meta"):
        car = Generator(512, 512, 512, 3, channel_base=32768, channel_max=512, img_content_shape=(384, 512))
    synthesis = car.synthesis
    assert car.num_ws == len(synthesis.style_dims) == len(synthesis.style_layers) == 16
    assert car.img_crop == (64, 448, 0, 512)
    assert synthesis.style_layers[:4] == [("b4.conv1",), ("b4.torgb", "b8.conv0"), ("b8.conv1",),
                                          ("b8.torgb", "b16.conv0")]
    assert synthesis.style_layers[-1] == ("b512.torgb",)
    assert synthesis.style_dims[:4] == [512, 1024, 512, 1024]
    assert synthesis.style_dims[-3:] == [128 + 128, 64, 64]  # b256.torgb + b512.conv0; b512.conv1; b512.torgb
    assert len(synthesis.conv_layer_names) == 15
    assert sum(synthesis.channels[int(n.split(".")[0][1:])] for n in synthesis.conv_layer_names) == 5504
    # Every modulated layer appears in exactly one W* entry.
    flat = [name for names in synthesis.style_layers for name in names]
    assert sorted(flat) == sorted(synthesis.layer_names) and len(flat) == 15 + 8


@pytest.mark.parametrize("training", [False, True])
def test_from_styles_of_styles_is_synthesis(training):
    generator = tiny_generator(32).train(training)
    ws = torch.randn(2, generator.num_ws, 12)  # different w per layer, as after style mixing
    styles = generator.synthesis.styles(ws)
    assert [s.shape[1] for s in styles] == generator.synthesis.style_dims
    assert torch.equal(generator.synthesis.from_styles(styles), generator.synthesis(ws))


def test_style_entries_follow_the_w_wiring():
    # Mixing the first k W* entries of one sample with the rest of another equals mixing ws at crossover k:
    # this is what makes "the first 4 layers are the view" the paper's statement about StyleGAN's ws.
    generator = tiny_generator(16)
    ws_view, ws_content = torch.randn(2, 1, 12).repeat(1, generator.num_ws, 1)
    ws_view, ws_content = ws_view[None], ws_content[None]
    for k in (1, 3, 4):
        styles = generator.synthesis.styles(ws_view)[:k] + generator.synthesis.styles(ws_content)[k:]
        mixed_ws = torch.cat([ws_view[:, :k], ws_content[:, k:]], dim=1)
        torch.testing.assert_close(generator.synthesis.from_styles(styles), generator.synthesis(mixed_ws))
    # An entry really controls its layers: changing only entry 4 changes the image.
    styles = generator.synthesis.styles(ws_view)
    changed = list(styles)
    changed[4] = changed[4] + 0.5
    assert not torch.allclose(generator.synthesis.from_styles(changed), generator.synthesis.from_styles(styles))


def test_styles_reject_wrong_shapes():
    generator = tiny_generator(32)
    styles = generator.synthesis.styles(generator.mapping(torch.randn(1, 16)))
    with pytest.raises(ValueError):
        generator.synthesis.from_styles(styles[:-1])
    with pytest.raises(ValueError):
        generator.synthesis.from_styles([s[:, :-1] for s in styles])
    with pytest.raises(ValueError):
        generator.synthesis(torch.randn(1, generator.num_ws + 1, 12))


def test_truncation():
    generator = tiny_generator(16)
    generator.mapping.w_avg.copy_(torch.randn(12))
    z = torch.randn(4, 16)
    ws = generator.mapping(z, truncation_psi=0.0)
    assert torch.allclose(ws, generator.mapping.w_avg.expand_as(ws))
    full = generator.mapping(z)
    half = generator.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(half[:, :2], generator.mapping.w_avg + 0.5 * (full[:, :2] - generator.mapping.w_avg))
    torch.testing.assert_close(half[:, 2:], full[:, 2:])


def test_w_avg_tracking():
    generator = tiny_generator(16)
    generator.mapping.w_avg.zero_()
    z = torch.randn(8, 16)
    before = generator.mapping(z)
    assert torch.all(generator.mapping.w_avg == 0)  # only updated when asked
    generator.mapping(z, update_w_avg=True)
    torch.testing.assert_close(generator.mapping.w_avg, (1 - 0.995) * before[:, 0].mean(dim=0))


def test_noise_modes():
    generator = tiny_generator(16)
    ws = generator.mapping(torch.randn(2, 16))
    const = generator.synthesis(ws, noise_mode="const")
    assert torch.equal(const, generator.synthesis(ws, noise_mode="const"))
    assert not torch.allclose(generator.synthesis(ws, noise_mode="random"), generator.synthesis(ws, noise_mode="random"))
    assert not torch.allclose(generator.synthesis(ws, noise_mode="none"), const)
    with pytest.raises(ValueError):
        generator.synthesis(ws, noise_mode="bogus")


def test_features():
    generator = tiny_generator(32)
    ws = generator.mapping(torch.randn(2, 16))
    features, image = generator.synthesis.features(ws, return_image=True)
    assert torch.equal(image, generator.synthesis(ws))
    assert len(features) == len(generator.synthesis.conv_layer_names) == 2 * 5 - 3
    expected = [(16, 4), (16, 8), (16, 8), (8, 16), (8, 16), (4, 32), (4, 32)]
    assert [(f.shape[1], f.shape[2]) for f in features] == expected
    assert all(f.shape[0] == 2 and f.shape[2] == f.shape[3] for f in features)
    # The last feature map is what the last toRGB turns into the top-resolution colours.
    torch.testing.assert_close(features[-1], generator.synthesis.features(ws)[-1])


def test_generator_trains_end_to_end():
    generator = tiny_generator(16).train()
    discriminator = Discriminator(16, 3, channel_base=128, channel_max=16)
    logits = discriminator(generator(torch.randn(4, 16), noise_mode="random"))
    assert logits.shape == (4, 1)
    logits.sum().backward()
    grads = {name: p.grad for name, p in generator.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["mapping.fc0.weight"].abs().sum() > 0 and grads["synthesis.b4.const"].abs().sum() > 0


def test_discriminator_shapes_and_minibatch_stddev():
    torch.manual_seed(0)
    discriminator = Discriminator(32, 3, channel_base=128, channel_max=16).eval()
    img = torch.randn(8, 3, 32, 32)
    assert discriminator(img).shape == (8, 1)
    # Minibatch stddev couples the samples of a group of 4, taken with stride B / 4 as in the official
    # code: with B = 8, changing sample 0 changes the logits of samples 2, 4, 6 but not of 1, 3, 5, 7.
    changed = img.clone()
    changed[0] += 1.0
    before, after = discriminator(img), discriminator(changed)
    assert not torch.allclose(before[2::2], after[2::2], rtol=0, atol=1e-6)
    torch.testing.assert_close(before[1::2], after[1::2])
    with pytest.raises(ValueError):
        discriminator(torch.randn(6, 3, 32, 32))  # 6 is not a multiple of the group size 4
    with pytest.raises(ValueError):
        discriminator(torch.randn(4, 3, 16, 16))
