"""StyleGAN2 ops against naive references written out loop by loop in numpy (float64)."""

import math

import numpy as np
import pytest
import torch

from ganverse3d.stylegan2.networks import (
    Conv2dLayer, FullyConnectedLayer, bias_act, modulated_conv2d, setup_filter, upfirdn2d)


def naive_upfirdn2d(x, filt_2d, up, down, pad, gain):
    """x [B, C, H, W] float64; filt_2d [K, K]; pad (left, right, top, bottom), may be negative."""
    batch, channels, height, width = x.shape
    upsampled = np.zeros((batch, channels, height * up, width * up))
    upsampled[:, :, ::up, ::up] = x
    left, right, top, bottom = pad
    padded = np.zeros((batch, channels, height * up + top + bottom, width * up + left + right))
    for i in range(padded.shape[2]):
        for j in range(padded.shape[3]):
            si, sj = i - top, j - left
            if 0 <= si < height * up and 0 <= sj < width * up:
                padded[:, :, i, j] = upsampled[:, :, si, sj]
    taps = filt_2d.shape[0]
    out_h, out_w = padded.shape[2] - taps + 1, padded.shape[3] - taps + 1
    out = np.zeros((batch, channels, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            # True convolution: the filter is flipped relative to the window.
            window = padded[:, :, i:i + taps, j:j + taps]
            out[:, :, i, j] = (window * filt_2d[::-1, ::-1]).sum(axis=(2, 3)) * gain
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up, down, pad, gain", [
    (1, 1, (0, 0, 0, 0), 1.0),
    (2, 1, (2, 1, 2, 1), 4.0),
    (1, 2, (2, 2, 1, 1), 1.0),
    (2, 2, (1, 1, 1, 1), 2.0),
    (1, 1, (-1, 2, 3, -2), 1.0),
])
def test_upfirdn2d_matches_naive_reference(up, down, pad, gain):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6))
    taps = np.array([1.0, 2.0, 5.0, 1.0])  # asymmetric, so a missing flip shows
    filt = taps / taps.sum()
    ours = upfirdn2d(torch.tensor(x, dtype=torch.float32), torch.tensor(filt, dtype=torch.float32),
                     up=up, down=down, padding=pad, gain=gain)
    reference = naive_upfirdn2d(x, np.outer(filt, filt), up, down, pad, gain)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)


def test_setup_filter_is_normalised_stylegan_filter():
    np.testing.assert_allclose(setup_filter().numpy(), np.array([1, 3, 3, 1]) / 8.0)


def test_bias_act_lrelu_gain_and_clamp():
    x = torch.tensor([[-2.0, 3.0]])
    out = bias_act(x, torch.tensor([1.0, -1.0]), activation="lrelu")
    np.testing.assert_allclose(out.numpy(), [[-0.2 * math.sqrt(2), 2 * math.sqrt(2)]], rtol=1e-6)
    clamped = bias_act(x, None, activation="lrelu", clamp=1.0)
    np.testing.assert_allclose(clamped.numpy(), [[-0.4 * math.sqrt(2), 1.0]], rtol=1e-6)


def naive_modulated_conv(x, weight, styles, demodulate, up, filt):
    """Per sample: scale the weight by the styles, demodulate, convolve (transposed conv + FIR for up=2)."""
    outputs = []
    for sample in range(x.shape[0]):
        w = weight * styles[sample][None, :, None, None]
        if demodulate:
            w = w / np.sqrt((w ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
        xs = x[sample]
        in_channels, height, width = xs.shape
        out_channels, _, k, _ = w.shape
        if up == 1:
            pad = k // 2
            padded = np.pad(xs, ((0, 0), (pad, pad), (pad, pad)))
            out = np.zeros((out_channels, height, width))
            for i in range(height):
                for j in range(width):
                    out[:, i, j] = np.einsum("oikl,ikl->o", w, padded[:, i:i + k, j:j + k])
        else:
            # Transposed convolution: every input pixel scatters the kernel at stride 2.
            out = np.zeros((out_channels, 2 * height + k - 2, 2 * width + k - 2))
            for i in range(height):
                for j in range(width):
                    out[:, 2 * i:2 * i + k, 2 * j:2 * j + k] += np.einsum("oikl,i->okl", w, xs[:, i, j])
            out = naive_upfirdn2d(out[None], np.outer(filt, filt), 1, 1, (1, 1, 1, 1), 4.0)[0]
        outputs.append(out)
    return np.stack(outputs)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up, demodulate, kernel", [(1, True, 3), (2, True, 3), (1, False, 1), (1, False, 3)])
def test_modulated_conv_matches_per_sample_naive_conv(fused, up, demodulate, kernel):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5, 5))
    weight = rng.standard_normal((6, 4, kernel, kernel))
    styles = rng.standard_normal((3, 4)) + 1.0
    filt = np.array([1.0, 3.0, 3.0, 1.0]) / 8.0
    ours = modulated_conv2d(torch.tensor(x, dtype=torch.float32), torch.tensor(weight, dtype=torch.float32),
                            torch.tensor(styles, dtype=torch.float32), demodulate=demodulate, up=up,
                            resample_filter=torch.tensor(filt, dtype=torch.float32), fused=fused)
    reference = naive_modulated_conv(x, weight, styles, demodulate, up, filt)
    assert ours.shape == reference.shape == (3, 6, 5 * up, 5 * up)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-4, rtol=1e-4)


def test_fully_connected_equalised_learning_rate():
    torch.manual_seed(0)
    layer = FullyConnectedLayer(400, 300, lr_multiplier=0.01, bias_init=1.0)
    # Stored weights have std 1 / lr_multiplier; the run-time scale brings the effective std to 1 / sqrt(fan_in).
    assert abs(layer.weight.std().item() - 100.0) < 2.0
    x = torch.randn(5, 400)
    expected = x @ (layer.weight * 0.01 / math.sqrt(400)).t() + layer.bias * 0.01
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer.bias * 0.01, torch.ones(300))  # effective bias starts at bias_init


def test_conv_layer_equalised_learning_rate_and_downsampling():
    torch.manual_seed(0)
    layer = Conv2dLayer(5, 7, 3, activation="linear")
    x = torch.randn(2, 5, 8, 8)
    expected = torch.nn.functional.conv2d(x, layer.weight / math.sqrt(5 * 9), layer.bias, padding=1)
    torch.testing.assert_close(layer(x), expected)
    down = Conv2dLayer(5, 7, 3, down=2)
    assert down(x).shape == (2, 7, 4, 4)
    # A constant image stays constant away from the border (the FIR filter sums to 1).
    const = down(torch.ones(1, 5, 8, 8))
    assert torch.allclose(const[..., 1:-1, 1:-1], const[..., 1:2, 1:2].expand_as(const[..., 1:-1, 1:-1]), atol=1e-5)
