"""Eq. 1's terms on hand-made inputs with known answers, and their gradients against finite differences."""

import math

import pytest
import torch

from ganverse3d.errors import InputError
from ganverse3d.geometry import template_sphere
from ganverse3d.inverse.losses import (LossWeights, PerceptualLoss, ViewTerms, colour_loss, flatten_loss, iou_loss,
                                       laplacian_loss, mask_iou, move_loss, total_loss)


def masks_from_pixels(size, *pixel_lists):
    masks = torch.zeros(len(pixel_lists), 1, size, size, dtype=torch.float64)
    for index, pixels in enumerate(pixel_lists):
        for row, column in pixels:
            masks[index, 0, row, column] = 1
    return masks


def test_iou_loss_of_known_masks_is_exact():
    # Image 0: 4 predicted pixels, 4 target pixels, 2 shared -> IoU 2 / 6. Image 1: identical -> IoU 1.
    predicted = masks_from_pixels(4, [(0, 0), (0, 1), (1, 0), (1, 1)], [(2, 2), (3, 3)])
    target = masks_from_pixels(4, [(0, 1), (1, 1), (0, 2), (1, 2)], [(2, 2), (3, 3)])
    assert iou_loss(predicted, target).item() == pytest.approx(1 - (2 / 6 + 1) / 2, abs=1e-6)
    assert mask_iou(predicted, target).tolist() == pytest.approx([2 / 6, 1.0])
    # Soft masks count fractionally: 0.5 inside a 1-pixel target -> 0.5 / 1.
    assert iou_loss(torch.full((1, 1, 1, 1), 0.5), torch.ones(1, 1, 1, 1)).item() == pytest.approx(0.5, abs=1e-5)


def test_mask_iou_of_two_empty_masks_is_one():
    empty = torch.zeros(1, 1, 3, 3)
    assert mask_iou(empty, empty).item() == 1.0


def test_colour_loss_compares_with_the_masked_target():
    target = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    mask = (torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    assert colour_loss(target * mask, target, mask).item() == 0.0
    assert colour_loss(target * mask + 0.25, target, mask).item() == pytest.approx(0.25)
    # Colour outside the object's mask is compared against black.
    assert colour_loss(target, target, mask).item() == pytest.approx((target * (1 - mask)).mean().item())


def test_laplacian_is_zero_on_the_template_and_any_translation_and_exact_for_a_bump():
    mesh = template_sphere()
    laplacian = mesh.laplacian().to_dense()
    zero = torch.zeros(1, mesh.num_verts, 3)
    assert laplacian_loss(zero, laplacian).item() == 0.0
    shifted = zero + torch.tensor([0.3, -0.2, 0.1])
    assert laplacian_loss(shifted, laplacian).item() == pytest.approx(0.0, abs=1e-12)

    bump, height, vertex = zero.clone(), 0.1, 17
    bump[0, vertex, 1] = height
    both = torch.cat((mesh.edges, mesh.edges.flip(1)))
    degree = torch.bincount(both[:, 0], minlength=mesh.num_verts).float()
    neighbours = both[both[:, 0] == vertex, 1]
    # (L d)_vertex = -h; (L d)_j = h / deg(j) for each neighbour j; zero elsewhere.
    expected = (height**2 + ((height / degree[neighbours]) ** 2).sum().item()) / mesh.num_verts
    assert laplacian_loss(bump, laplacian).item() == pytest.approx(expected, rel=1e-5)


def square_mesh(fold_height: float):
    """Two triangles sharing the diagonal edge (0, 2) of a unit square; vertex 3 lifted by ``fold_height``."""
    verts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, fold_height]]],
                         dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return verts, faces, torch.tensor([[0, 2]]), torch.tensor([[0, 1]])


def test_flatten_is_zero_on_a_plane_and_positive_on_a_fold():
    assert flatten_loss(*square_mesh(0.0)).item() == pytest.approx(0.0, abs=1e-12)
    # Lifting vertex 3 until its wing is perpendicular to the other face's: a right-angle fold, (cos + 1)^2 = 1.
    verts, faces, edges, edge_faces = square_mesh(0.0)
    verts[0, 3] = torch.tensor([0.5, 0.5, math.sqrt(0.5)])
    assert flatten_loss(verts, faces, edges, edge_faces).item() == pytest.approx(1.0, abs=1e-9)
    slight, steeper = flatten_loss(*square_mesh(0.2)).item(), flatten_loss(*square_mesh(0.6)).item()
    assert 0 < slight < steeper


def test_flatten_of_the_closed_template_uses_every_edge():
    mesh = template_sphere()
    value = flatten_loss(mesh.verts[None].double(), mesh.faces, mesh.edges, mesh.edge_faces).item()
    # The icosphere bends by about 12 degrees across each edge: small but not zero.
    assert 1e-5 < value < 1e-2
    folded = mesh.verts.clone()
    folded[5] *= 1.5  # a spike
    assert flatten_loss(folded[None].double(), mesh.faces, mesh.edges, mesh.edge_faces).item() > value


def test_move_loss_is_size_plus_spread_of_the_offsets():
    uniform = torch.zeros(1, 10, 3) + torch.tensor([0.0, 0.3, 0.4])   # |d| = 0.5 everywhere
    assert move_loss(torch.zeros(1, 10, 3)).item() == 0.0
    assert move_loss(uniform).item() == pytest.approx(0.25)
    uneven = torch.zeros(1, 10, 3)
    uneven[0, :5, 0] = 1.0  # mean |d|^2 = 0.5, lengths 0/1 -> variance 0.25
    assert move_loss(uneven).item() == pytest.approx(0.75)


def test_gradients_match_finite_differences():
    generator = torch.Generator().manual_seed(0)
    predicted = torch.rand(2, 1, 4, 4, generator=generator, dtype=torch.float64).requires_grad_()
    target = (torch.rand(2, 1, 4, 4, generator=generator, dtype=torch.float64) > 0.5).double()
    assert torch.autograd.gradcheck(lambda m: iou_loss(m, target), (predicted,))

    mesh = template_sphere(1)
    laplacian = mesh.laplacian().to_dense().double()
    offsets = (0.1 * torch.randn(2, mesh.num_verts, 3, generator=generator, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda d: laplacian_loss(d, laplacian), (offsets,))
    assert torch.autograd.gradcheck(move_loss, (offsets,))
    verts = (mesh.verts.double() + offsets.detach()).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: flatten_loss(v, mesh.faces, mesh.edges, mesh.edge_faces), (verts,))


def test_total_loss_sums_both_views_and_counts_shape_terms_once_per_view():
    weights = LossWeights()
    view = ViewTerms(iou=torch.tensor(0.5), colour=torch.tensor(0.1), percept=None)
    shape = {"laplacian": torch.tensor(0.01), "flatten": torch.tensor(0.02), "move": torch.tensor(0.03)}
    one, _ = total_loss([view], shape, torch.tensor(0.0), weights)
    two, stats = total_loss([view, view], shape, torch.tensor(0.0), weights)
    per_view = 3 * 0.5 + 20 * 0.1 + 5 * 0.01 + 5 * 0.02 + 2.5 * 0.03
    assert one.item() == pytest.approx(per_view)
    assert two.item() == pytest.approx(2 * per_view)
    assert {"iou_loss_view0", "iou_loss_view1", "colour_view1", "loss"} <= set(stats)
    with_percept = ViewTerms(iou=torch.tensor(0.5), colour=torch.tensor(0.1), percept=torch.tensor(0.2))
    assert total_loss([with_percept], shape, torch.tensor(0.0), weights)[0].item() == pytest.approx(per_view + 0.5 * 0.2)


def test_perceptual_loss_from_local_vgg_weights(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    path = tmp_path / "vgg16_features.pth"
    torch.save({f"features.{k}": v for k, v in torchvision.models.vgg16().features.state_dict().items()}, path)
    perceptual = PerceptualLoss(path)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert perceptual(images, images).item() == pytest.approx(0.0, abs=1e-6)
    assert perceptual(images, images.flip(-1)).item() > 0
    # The trunk really holds the file's weights (not lpips' random ones).
    saved = torch.load(path, weights_only=True)
    assert torch.equal(perceptual.lpips.net.slice1[0].weight, saved["features.0.weight"])


def test_perceptual_loss_says_what_is_wrong_with_its_weights(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        PerceptualLoss(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(InputError, match="lacks|shapes"):
        PerceptualLoss(wrong)
    (tmp_path / "text.pth").write_text("not a state dict")
    with pytest.raises(InputError, match="not a PyTorch state dict"):
        PerceptualLoss(tmp_path / "text.pth")
