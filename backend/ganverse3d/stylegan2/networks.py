"""StyleGAN2 (config F): mapping network, synthesis network with per-layer style access, residual discriminator.

Self-contained and pure PyTorch: this file imports nothing else from the project and nothing of
training, so a generator can be loaded and run anywhere torch runs.

Parameter names and shapes follow stylegan2-ada-pytorch (``mapping.fc0.weight``,
``synthesis.b8.conv0.affine.bias``, ...), so its state dicts load without renaming; ``load.py`` maps the
official TensorFlow pickles and rosinality's checkpoints onto the same names. The numerics are the official
ones; the modulated convolutions scale their weights by 1/sqrt(fan_in) as the TF code and rosinality do
(stylegan2-ada-pytorch leaves that out; demodulation cancels it up to its 1e-8 epsilon). Everything runs
in float32 (stylegan2-ada-pytorch's mixed precision is a GPU speed trick, not part of the model).

Conventions:

* Channels per resolution: ``channels(res) = min(channel_base // res, channel_max)``; the official 512-px
  models use channel_base 32768 (= 2 x the TF ``fmap_base``) and channel_max 512.
* Equalised learning rate: every weight is stored with unit-variance initialisation and scaled at run
  time by ``lr_multiplier / sqrt(fan_in)``; biases by ``lr_multiplier``.
* Images leave the synthesis network in [-1, 1] (roughly: they are not clamped), shape [B, C, R, R].
* Rectangular models (the official LSUN car model is 512x384) are square canvases whose content is a
  centred box; ``Generator.img_crop`` gives it and ``Generator.crop_to_content`` cuts it out.

The paper's W* space (GANverse3D, Sec. 3.1) is exposed by ``SynthesisNetwork.styles``: entry ``l`` holds
the outputs of the learned affine transformations that read ``ws[:, l]``, so W* has ``num_ws`` entries
(16 for the 512-px car model) and fixing the first k entries is exactly StyleGAN's style mixing at
crossover k. See ``SynthesisNetwork`` for which layers each entry feeds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# StyleGAN2's FIR filter for up/downsampling, applied separably along H and W.
DEFAULT_RESAMPLE_FILTER = (1, 3, 3, 1)
NOISE_MODES = ("const", "random", "none")

_LRELU_SLOPE = 0.2
_LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through leaky ReLU


# ----------------------------------------------------------------------------------------------------
# Ops


def setup_filter(taps=DEFAULT_RESAMPLE_FILTER) -> torch.Tensor:
    """1-D FIR taps normalised to sum 1 -> float32 [K]; the 2-D filter is their outer product."""
    # On the CPU even while a module is built on the meta device (ganverse3d.bundle does, to learn its shapes):
    # the taps are data, and a meta division would import half of torch's compiler.
    filt = torch.as_tensor(taps, dtype=torch.float32, device="cpu")
    assert filt.ndim == 1 and filt.numel() >= 1
    return filt / filt.sum()


def upfirdn2d(x: torch.Tensor, filt: torch.Tensor, up: int = 1, down: int = 1,
              padding=(0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with a separable FIR filter, downsample by dropping pixels.

    Args:
        x: [B, C, H, W].
        filt: [K] 1-D taps (see ``setup_filter``), applied along W and along H (true convolution).
        up: integer upsampling factor.
        down: integer downsampling factor.
        padding: (left, right, top, bottom) padding added after upsampling; negative values crop.
        gain: overall scale of the output (``up ** 2`` keeps the mean intensity when upsampling).

    Returns:
        [B, C, (H * up + top + bottom - K) // down + 1, (W * up + left + right - K) // down + 1].
    """
    assert x.ndim == 4 and filt.ndim == 1
    batch, channels, height, width = x.shape
    pad_left, pad_right, pad_top, pad_bottom = padding
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    x = F.pad(x, [max(pad_left, 0), max(pad_right, 0), max(pad_top, 0), max(pad_bottom, 0)])
    x = x[:, :, max(-pad_top, 0):x.shape[2] - max(-pad_bottom, 0), max(-pad_left, 0):x.shape[3] - max(-pad_right, 0)]
    # Depthwise (groups = channels) 1-D convolutions along W then H; conv2d correlates, so flip the taps.
    taps = filt.flip(0).to(x.dtype)
    x = F.conv2d(x, (taps * gain).reshape(1, 1, 1, -1).expand(channels, 1, 1, -1), stride=(1, down), groups=channels)
    return F.conv2d(x, taps.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1), stride=(down, 1), groups=channels)


def upsample2d(x: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, 2H, 2W]: FIR-filtered 2x upsampling (the skip-image path of the generator)."""
    taps = filt.numel()
    return upfirdn2d(x, filt, up=2, padding=((taps + 1) // 2, (taps - 2) // 2) * 2, gain=4.0)


def bias_act(x: torch.Tensor, bias: torch.Tensor | None = None, activation: str = "linear",
             gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias, apply an activation, scale by gain, clamp to [-clamp, clamp].

    Args:
        x: [B, C, ...].
        bias: [C] or None.
        activation: "linear" or "lrelu" (leaky ReLU, slope 0.2).
        gain: output scale; None uses the activation's default (1 for linear, sqrt(2) for lrelu).
        clamp: None or the largest absolute output value (stylegan2-ada-pytorch's ``conv_clamp``).
    """
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, _LRELU_SLOPE)
        gain = _LRELU_GAIN if gain is None else gain
    elif activation != "linear":
        raise ValueError(f"Unknown activation {activation!r}; expected 'linear' or 'lrelu'.")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """[B, D] -> [B, D] scaled so that each row has unit mean square (StyleGAN's latent normalisation)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _up_conv_padding(kernel_size: int, taps: int, padding: int) -> tuple[int, int]:
    """FIR padding (before, after) that makes transposed-conv 2x upsampling give exactly 2H x 2W."""
    # The transposed convolution (stride 2, no padding) yields 2H + k - 2 rows; the FIR filter with this
    # padding trims them to 2H, centred like stylegan2-ada-pytorch's conv2d_resample.
    before = padding + (taps + 1) // 2 - (kernel_size - 1)
    after = padding + (taps - 2) // 2 - (kernel_size - 2)
    assert before >= 0 and after >= 0
    return before, after


def modulated_conv2d(
    x: torch.Tensor,                     # Input feature maps [B, I, H, W].
    weight: torch.Tensor,                # Convolution weight [O, I, k, k], equalised-lr gain already applied.
    styles: torch.Tensor,                # Per-sample scales of the input channels [B, I].
    demodulate: bool = True,             # Rescale each sample's effective weight to unit L2 norm per output channel.
    up: int = 1,                         # 1, or 2 for a transposed convolution (zero insertion) followed by FIR filtering.
    resample_filter: torch.Tensor | None = None,  # [K] FIR taps for up = 2.
    fused: bool = True,                  # True: one grouped convolution with per-sample weights; False: scale the
                                         # activations instead and share one weight (same result, faster for large batches).
) -> torch.Tensor:
    """StyleGAN2's modulated convolution: per-sample weights ``weight * styles`` (then demodulated).

    For up = 2 the weight is applied as a transposed convolution (stylegan2-ada-pytorch's and rosinality's
    convention; the official TF weights are flipped spatially relative to it, see ``load.py``).

    Returns:
        [B, O, H * up, W * up].
    """
    batch, in_channels, height, width = x.shape
    out_channels, weight_in, kernel_h, kernel_w = weight.shape
    assert weight_in == in_channels and kernel_h == kernel_w and styles.shape == (batch, in_channels)
    assert up in (1, 2) and (up == 1 or resample_filter is not None)
    padding = kernel_w // 2

    if demodulate:
        # 1 / ||weight * styles|| per sample and output channel, without forming the per-sample weights.
        demod = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [B, O]

    if fused:
        per_sample = weight.unsqueeze(0) * styles.reshape(batch, 1, in_channels, 1, 1)  # [B, O, I, k, k]
        if demodulate:
            per_sample = per_sample * demod.reshape(batch, out_channels, 1, 1, 1)
        grouped_x = x.reshape(1, batch * in_channels, height, width)
        if up == 1:
            out = F.conv2d(grouped_x, per_sample.reshape(batch * out_channels, in_channels, kernel_h, kernel_w),
                           padding=padding, groups=batch)
        else:
            # conv_transpose2d wants [in, out, k, k] per group.
            transposed = per_sample.transpose(1, 2).reshape(batch * in_channels, out_channels, kernel_h, kernel_w)
            out = F.conv_transpose2d(grouped_x, transposed, stride=2, groups=batch)
        out = out.reshape(batch, out_channels, out.shape[2], out.shape[3])
    else:
        scaled_x = x * styles.reshape(batch, in_channels, 1, 1)
        if up == 1:
            out = F.conv2d(scaled_x, weight, padding=padding)
        else:
            out = F.conv_transpose2d(scaled_x, weight.transpose(0, 1), stride=2)
    if up == 2:
        before, after = _up_conv_padding(kernel_w, resample_filter.numel(), padding)
        out = upfirdn2d(out, resample_filter, padding=(before, after, before, after), gain=4.0)
    if demodulate and not fused:
        out = out * demod.reshape(batch, out_channels, 1, 1)
    return out


# ----------------------------------------------------------------------------------------------------
# Layers with equalised learning rate


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: y = act(x @ (W * lr / sqrt(in)).T + b * lr)."""

    def __init__(
        self,
        in_features: int,            # Number of input features.
        out_features: int,           # Number of output features.
        activation: str = "linear",  # "linear" or "lrelu".
        lr_multiplier: float = 1.0,  # Learning-rate multiplier (0.01 in the mapping network).
        bias_init: float = 0.0,      # Initial value of the effective bias (1 for style affines: styles start at 1).
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, in_features] -> [B, out_features]."""
        assert x.ndim == 2 and x.shape[1] == self.in_features, x.shape
        weight = self.weight * self.weight_gain
        bias = self.bias * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(bias.unsqueeze(0), x, weight.t())
        return bias_act(x.matmul(weight.t()), bias, activation=self.activation)


class Conv2dLayer(nn.Module):
    """Plain convolution with equalised learning rate and optional FIR-filtered 2x downsampling (discriminator)."""

    def __init__(
        self,
        in_channels: int,               # Number of input channels.
        out_channels: int,              # Number of output channels.
        kernel_size: int,               # Width and height of the kernel (1 or 3).
        bias: bool = True,              # Whether the layer has a bias.
        activation: str = "linear",     # "linear" or "lrelu".
        down: int = 1,                  # 1, or 2 for FIR filtering followed by a stride-2 convolution.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp (None: no clamping).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """[B, in, H, W] -> [B, out, H / down, W / down]; ``gain`` scales the output (residual branches use sqrt(1/2))."""
        assert x.ndim == 4 and x.shape[1] == self.in_channels, x.shape
        weight = self.weight * self.weight_gain
        if self.down == 1:
            x = F.conv2d(x, weight, padding=self.padding)
        else:
            # Blur, then a stride-2 convolution: the FIR filter removes what the stride would alias.
            taps = self.resample_filter.numel()
            before, after = self.padding + (taps - 1) // 2, self.padding + (taps - 2) // 2
            x = upfirdn2d(x, self.resample_filter, padding=(before, after, before, after))
            x = F.conv2d(x, weight, stride=2)
        default_gain = _LRELU_GAIN if self.activation == "lrelu" else 1.0
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, activation=self.activation, gain=default_gain * gain, clamp=clamp)


# ----------------------------------------------------------------------------------------------------
# Generator


class MappingNetwork(nn.Module):
    """z -> w: normalise z, then ``num_layers`` leaky-ReLU dense layers; tracks the mean w for truncation."""

    def __init__(
        self,
        z_dim: int,                   # Input latent (Z) dimensionality.
        w_dim: int,                   # Intermediate latent (W) dimensionality.
        num_ws: int,                  # Number of copies of w to output (one per synthesis style input).
        num_layers: int = 8,          # Number of dense layers.
        lr_multiplier: float = 0.01,  # Learning-rate multiplier of every layer (StyleGAN's mapping_lrmul).
        w_avg_beta: float = 0.995,    # Decay of the running mean of w, updated when ``update_w_avg=True``.
    ):
        super().__init__()
        assert num_layers >= 1
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        for index in range(num_layers):
            in_features = z_dim if index == 0 else w_dim
            layer = FullyConnectedLayer(in_features, w_dim, activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{index}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_w_avg: bool = False) -> torch.Tensor:
        """[B, z_dim] -> ws [B, num_ws, w_dim].

        ``truncation_psi`` pulls the first ``truncation_cutoff`` ws (all when None) towards ``w_avg``:
        ``w_avg + psi * (w - w_avg)``. ``update_w_avg=True`` (training) moves ``w_avg`` towards this batch's
        mean w, before truncation.
        """
        assert z.ndim == 2 and z.shape[1] == self.z_dim, z.shape
        x = normalize_2nd_moment(z.to(torch.float32))
        for index in range(self.num_layers):
            x = getattr(self, f"fc{index}")(x)
        if update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up), per-pixel noise with learned strength, bias, leaky ReLU."""

    def __init__(
        self,
        in_channels: int,               # Number of input channels (= the size of this layer's style).
        out_channels: int,              # Number of output channels.
        w_dim: int,                     # Intermediate latent (W) dimensionality.
        resolution: int,                # Output resolution (side of the square feature map).
        up: int = 1,                    # 1, or 2 for the block's first layer.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp (None: no clamping).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.weight_gain = 1.0 / math.sqrt(in_channels * 3 * 3)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: str = "const",
                fused: bool = True) -> torch.Tensor:
        """x [B, in, R/up, R/up], style [B, in] (this layer's affine output) -> [B, out, R, R]."""
        assert x.shape[1:] == (self.in_channels, self.resolution // self.up, self.resolution // self.up), x.shape
        x = modulated_conv2d(x, self.weight * self.weight_gain, style, demodulate=True, up=self.up,
                             resample_filter=self.resample_filter, fused=fused)
        if noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength
        elif noise_mode != "none":
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}; got {noise_mode!r}.")
        return bias_act(x, self.bias, activation="lrelu", clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation, plus bias."""

    def __init__(
        self,
        in_channels: int,               # Number of input channels (= the size of this layer's style).
        out_channels: int,              # Number of image channels.
        w_dim: int,                     # Intermediate latent (W) dimensionality.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp (None: no clamping).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, fused: bool = True) -> torch.Tensor:
        """x [B, in, H, W], style [B, in] -> [B, out, H, W]."""
        assert x.ndim == 4 and x.shape[1] == self.in_channels, x.shape
        x = modulated_conv2d(x, self.weight * self.weight_gain, style, demodulate=False, fused=fused)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const | 2x up-conv), conv, toRGB added to the upsampled image."""

    def __init__(
        self,
        in_channels: int,               # Channels of the previous block's features; 0 for the first (4x4) block.
        out_channels: int,              # Channels of this block's features.
        w_dim: int,                     # Intermediate latent (W) dimensionality.
        resolution: int,                # Resolution of this block's output.
        img_channels: int,              # Number of image channels.
        conv_clamp: float | None = None,  # Clamp layer outputs to +-conv_clamp (None: no clamping).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
            self.layer_names = ("conv1", "torgb")
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
            self.layer_names = ("conv0", "conv1", "torgb")
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, styles: list[torch.Tensor],
                noise_mode: str, fused: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Run the block.

        Args:
            x: [B, in, R/2, R/2] features of the previous block, or None for the first block.
            img: [B, C, R/2, R/2] image so far, or None for the first block.
            styles: one [B, dim] style per entry of ``self.layer_names``, in that order.

        Returns:
            (features [B, out, R, R], image [B, C, R, R], the outputs of this block's conv layers).
        """
        assert len(styles) == len(self.layer_names)
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(styles[0].shape[0], -1, -1, -1)
            conv_outputs = [self.conv1(x, styles[0], noise_mode, fused)]
        else:
            first = self.conv0(x, styles[0], noise_mode, fused)
            conv_outputs = [first, self.conv1(first, styles[1], noise_mode, fused)]
        x = conv_outputs[-1]
        rgb = self.torgb(x, styles[-1], fused)
        img = rgb if img is None else upsample2d(img, self.resample_filter) + rgb
        return x, img, conv_outputs


def num_ws_at(img_resolution: int) -> int:
    """The number of W entries (one per modulated layer's w) of a generator at ``img_resolution``: 2 log2(R) - 2."""
    return 2 * int(math.log2(img_resolution)) - 2


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, C, R, R], with the W* style space exposed.

    Modulated layers are named ``b{res}.conv0`` (2x up-conv), ``b{res}.conv1`` and ``b{res}.torgb``; the
    4x4 block has no conv0. Layer ``b4.conv1`` reads ``ws[:, 0]``; in the block of resolution 2^(k+2)
    (k >= 1) conv0 reads ``ws[:, 2k-1]`` and conv1 ``ws[:, 2k]``; the toRGB of that block reads
    ``ws[:, 2k+1]``, i.e. the same w as the next block's conv0 (the last toRGB has ``ws[:, -1]`` alone).
    This is the official w-to-layer wiring, so ``num_ws = 2 log2(R) - 2``.

    W* (``styles``): entry l is the concatenation, in the order of ``style_layers[l]``, of the affine
    outputs of the layers that read ``ws[:, l]``; its size is ``style_dims[l]`` (the sum of those layers'
    input channels). For the official 512-px car model (16 entries) that is
    ``style_layers = [("b4.conv1",), ("b4.torgb", "b8.conv0"), ("b8.conv1",), ("b8.torgb", "b16.conv0"), ...,
    ("b512.torgb",)]`` with ``style_dims = [512, 1024, 512, 1024, ...]``; its first four entries are the
    paper's W*_V (the view) and the other twelve W*_STB (shape, texture, background). The sizes differ from
    the paper's 2048 / 3008 because the paper counted StyleGAN1's one-vector-per-layer styles.
    """

    def __init__(
        self,
        w_dim: int,                       # Intermediate latent (W) dimensionality.
        img_resolution: int,              # Output resolution (power of two >= 4).
        img_channels: int,                # Number of image channels.
        channel_base: int,                # channels(res) = min(channel_base // res, channel_max).
        channel_max: int,                 # Most channels of any layer.
        conv_clamp: float | None = None,  # Clamp layer outputs to +-conv_clamp (None: no clamping).
    ):
        super().__init__()
        log2_resolution = int(round(math.log2(img_resolution)))
        if img_resolution < 4 or 2 ** log2_resolution != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4; got {img_resolution}.")
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2_resolution + 1)]
        self.channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        if min(self.channels.values()) < 1:
            raise ValueError(f"channel_base {channel_base} gives no channels at {img_resolution} px.")
        ws_of_layer = {}
        for block_index, res in enumerate(self.block_resolutions):
            in_channels = self.channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(in_channels, self.channels[res], w_dim, res, img_channels, conv_clamp=conv_clamp)
            setattr(self, f"b{res}", block)
            if block_index > 0:
                ws_of_layer[f"b{res}.conv0"] = 2 * block_index - 1
            ws_of_layer[f"b{res}.conv1"] = 2 * block_index
            ws_of_layer[f"b{res}.torgb"] = 2 * block_index + 1
        self.num_ws = num_ws_at(img_resolution)
        # Modulated layers in execution order, and for each w index the layers that read it.
        self.layer_names = list(ws_of_layer)
        self.style_layers = [tuple(name for name in self.layer_names if ws_of_layer[name] == index)
                             for index in range(self.num_ws)]
        self.style_dims = [sum(self.get_submodule(name).in_channels for name in names) for names in self.style_layers]
        self.conv_layer_names = [name for name in self.layer_names if not name.endswith("torgb")]

    def styles(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """ws [B, num_ws, w_dim] -> W*: ``num_ws`` tensors [B, style_dims[l]] (see the class docstring)."""
        self._check_ws(ws)
        return [torch.cat([self.get_submodule(name).affine(ws[:, index]) for name in names], dim=1)
                for index, names in enumerate(self.style_layers)]

    def from_styles(self, styles: list[torch.Tensor], noise_mode: str = "const") -> torch.Tensor:
        """W* (as returned by ``styles``) -> image [B, C, R, R]."""
        image, _, _ = self._run(styles, noise_mode)
        return image

    def features(self, ws: torch.Tensor, noise_mode: str = "const", return_image: bool = False):
        """The output of every modulated 3x3 conv layer (after noise, bias and activation), in order.

        Returns ``2 log2(R) - 3`` tensors [B, channels, res, res] (named by ``conv_layer_names``: b4.conv1,
        b8.conv0, b8.conv1, ...), and with ``return_image=True`` the pair (features, image).
        """
        image, conv_outputs, _ = self._run(self.styles(ws), noise_mode)
        return (conv_outputs, image) if return_image else conv_outputs

    def block_images(self, ws: torch.Tensor, noise_mode: str = "const") -> list[torch.Tensor]:
        """Each block's own toRGB output (its features seen through its learned RGB transformation, the
        paper's Appendix B), one [B, C, res, res] per entry of ``block_resolutions``; they sum, each upsampled
        to the next resolution, to the final image."""
        _, _, cumulative = self._run(self.styles(ws), noise_mode)
        own = [cumulative[0]]
        for index in range(1, len(cumulative)):
            block = getattr(self, f"b{self.block_resolutions[index]}")
            own.append(cumulative[index] - upsample2d(cumulative[index - 1], block.resample_filter))
        return own

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> image [B, C, R, R], roughly in [-1, 1]."""
        return self.from_styles(self.styles(ws), noise_mode)

    def _check_ws(self, ws: torch.Tensor) -> None:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [B, {self.num_ws}, {self.w_dim}]; got {list(ws.shape)}.")

    def _run(self, styles: list[torch.Tensor], noise_mode: str):
        """-> (image, every conv layer's output, the cumulative image after each block)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}; got {noise_mode!r}.")
        if len(styles) != self.num_ws:
            raise ValueError(f"Expected {self.num_ws} style vectors; got {len(styles)}.")
        style_of_layer = {}
        for index, (style, names) in enumerate(zip(styles, self.style_layers)):
            if style.ndim != 2 or style.shape[1] != self.style_dims[index]:
                raise ValueError(f"Style {index} must have shape [B, {self.style_dims[index]}]; got {list(style.shape)}.")
            sizes = [self.get_submodule(name).in_channels for name in names]
            style_of_layer.update(zip(names, torch.split(style, sizes, dim=1)))
        # A grouped convolution with per-sample weights suits inference; training shares one weight.
        fused = not self.training
        x = img = None
        conv_outputs, cumulative_images = [], []
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_styles = [style_of_layer[f"b{res}.{name}"] for name in block.layer_names]
            x, img, block_conv_outputs = block(x, img, block_styles, noise_mode, fused)
            conv_outputs += block_conv_outputs
            cumulative_images.append(img)
        return img, conv_outputs, cumulative_images


class Generator(nn.Module):
    """StyleGAN2 generator: z [B, z_dim] -> image [B, C, R, R] in [-1, 1] (unconditional)."""

    def __init__(
        self,
        z_dim: int,                                     # Input latent (Z) dimensionality.
        w_dim: int,                                     # Intermediate latent (W) dimensionality.
        img_resolution: int,                            # Output resolution: side of the square canvas.
        img_channels: int,                              # Number of image channels (3 for RGB).
        channel_base: int,                              # channels(res) = min(channel_base // res, channel_max).
        channel_max: int,                               # Most channels of any layer.
        num_mapping_layers: int = 8,                    # Dense layers in the mapping network.
        mapping_lr_multiplier: float = 0.01,            # Learning-rate multiplier of the mapping network.
        w_avg_beta: float = 0.995,                      # Decay of the running mean of w (truncation centre).
        conv_clamp: float | None = None,                # Clamp layer outputs to +-conv_clamp (None: no clamping).
        img_content_shape: tuple[int, int] | None = None,  # (height, width) of the content, centred in the
                                                        # canvas (e.g. (384, 512) for the car model); None = all.
    ):
        super().__init__()
        self._architecture_kwargs = dict(
            z_dim=z_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
            channel_base=channel_base, channel_max=channel_max, num_mapping_layers=num_mapping_layers,
            mapping_lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta, conv_clamp=conv_clamp)
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.img_content_shape = img_content_shape
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max,
                                          conv_clamp=conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, num_layers=num_mapping_layers,
                                      lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta)

    @property
    def img_content_shape(self) -> tuple[int, int]:
        """(height, width) of the image content, centred in the square canvas."""
        return self._img_content_shape

    @img_content_shape.setter
    def img_content_shape(self, shape: tuple[int, int] | None) -> None:
        # Settable because the official pickles do not record it (the car model's 512x384 is a dataset fact).
        height, width = (self.img_resolution, self.img_resolution) if shape is None else (int(v) for v in shape)
        if not (0 < height <= self.img_resolution and 0 < width <= self.img_resolution):
            raise ValueError(f"img_content_shape {(height, width)} must fit the {self.img_resolution}-px canvas.")
        self._img_content_shape = (height, width)

    @property
    def img_crop(self) -> tuple[int, int, int, int]:
        """The content box (top, bottom, left, right) in canvas pixels: rows 64:448 for the 512x384 car model."""
        height, width = self._img_content_shape
        top, left = (self.img_resolution - height) // 2, (self.img_resolution - width) // 2
        return top, top + height, left, left + width

    @property
    def init_kwargs(self) -> dict:
        """The constructor arguments (JSON-serialisable) that rebuild this generator."""
        return dict(self._architecture_kwargs, img_content_shape=list(self._img_content_shape))

    def crop_to_content(self, img: torch.Tensor) -> torch.Tensor:
        """[..., R, R] -> [..., content height, content width]: the box ``img_crop``."""
        top, bottom, left, right = self.img_crop
        return img[..., top:bottom, left:right]

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const") -> torch.Tensor:
        """z [B, z_dim] -> image [B, C, R, R] in [-1, 1] (the full canvas; see ``crop_to_content``)."""
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


# ----------------------------------------------------------------------------------------------------
# Discriminator


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs (the second downsamples 2x) plus a 1x1 downsampling skip, each scaled by sqrt(1/2)."""

    def __init__(
        self,
        tmp_channels: int,              # Channels of the input and of the first conv.
        out_channels: int,              # Channels of the output.
        img_channels: int,              # Number of image channels.
        from_image: bool,               # Whether this (first) block reads the image through a 1x1 fromRGB layer.
        conv_clamp: float | None = None,  # Clamp layer outputs to +-conv_clamp (None: no clamping).
    ):
        super().__init__()
        self.tmp_channels = tmp_channels
        self.from_image = from_image
        if from_image:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, tmp, R, R] (or the image [B, C, R, R] when ``from_image``) -> [B, out, R/2, R/2]."""
        if self.from_image:
            x = self.fromrgb(x)
        assert x.shape[1] == self.tmp_channels, x.shape
        residual = self.skip(x, gain=math.sqrt(0.5))
        return residual + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class MinibatchStdLayer(nn.Module):
    """Append the mean standard deviation of features across groups of samples as extra channels."""

    def __init__(
        self,
        group_size: int,    # Samples per group (the batch size must be a multiple of min(group_size, batch)).
        num_channels: int,  # Number of feature groups, hence of appended channels.
    ):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C + num_channels, H, W]."""
        batch, channels, height, width = x.shape
        group = min(self.group_size, batch)
        if batch % group:
            raise ValueError(f"Batch size {batch} must be a multiple of the minibatch-stddev group size {group}.")
        feature_groups = self.num_channels
        y = x.reshape(group, -1, feature_groups, channels // feature_groups, height, width)
        y = (y - y.mean(dim=0)).square().mean(dim=0)          # [n, F, c, H, W] variance over each group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])             # [n, F] mean stddev
        y = y.reshape(-1, feature_groups, 1, 1).repeat(group, 1, height, width)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch stddev, 3x3 conv, dense, dense -> one logit."""

    def __init__(
        self,
        in_channels: int,                 # Channels of the 4x4 features.
        resolution: int,                  # Resolution of the features (4).
        mbstd_group_size: int,            # Group size of the minibatch-stddev layer.
        mbstd_num_channels: int,          # Channels appended by the minibatch-stddev layer.
        conv_clamp: float | None = None,  # Clamp the conv output to +-conv_clamp (None: no clamping).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels)
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, in, 4, 4] -> logits [B, 1]."""
        assert x.shape[1:] == (self.in_channels, self.resolution, self.resolution), x.shape
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: image [B, C, R, R] -> realness logits [B, 1] (unconditional)."""

    def __init__(
        self,
        img_resolution: int,              # Input resolution (power of two >= 8).
        img_channels: int,                # Number of image channels.
        channel_base: int,                # channels(res) = min(channel_base // res, channel_max).
        channel_max: int,                 # Most channels of any layer.
        mbstd_group_size: int = 4,        # Group size of the minibatch-stddev layer.
        mbstd_num_channels: int = 1,      # Channels appended by the minibatch-stddev layer.
        conv_clamp: float | None = None,  # Clamp layer outputs to +-conv_clamp (None: no clamping).
    ):
        super().__init__()
        log2_resolution = int(round(math.log2(img_resolution)))
        if img_resolution < 8 or 2 ** log2_resolution != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 8; got {img_resolution}.")
        self.init_kwargs = dict(
            img_resolution=img_resolution, img_channels=img_channels, channel_base=channel_base,
            channel_max=channel_max, mbstd_group_size=mbstd_group_size, mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp)
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(log2_resolution, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        if min(channels.values()) < 1:
            raise ValueError(f"channel_base {channel_base} gives no channels at {img_resolution} px.")
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res], channels[res // 2], img_channels,
                                       from_image=res == img_resolution, conv_clamp=conv_clamp)
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(channels[4], 4, mbstd_group_size, mbstd_num_channels, conv_clamp=conv_clamp)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """[B, C, R, R] -> [B, 1]."""
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"Discriminator input must have shape [B, {', '.join(map(str, expected))}]; got {list(img.shape)}.")
        x = img
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)
        return self.b4(x)
