"""Wheel fitting, wheel meshes and the pull-in (ganverse3d.geometry.wheels) against world cars with known wheels."""

import numpy as np
import pytest
import torch

from ganverse3d.geometry import template_sphere
from ganverse3d.geometry.mesh import shrink_wrap
from ganverse3d.geometry.wheels import (BODY_LABEL, RIM_MATERIAL, TYRE_MATERIAL, WHEEL_LABEL, WHEEL_NAMES,
                                        fit_wheels, pull_in_wheels, wheel_mesh)
from ganverse3d.world import cars


def world_car(body_type: str, seed: int):
    return cars.build_car(cars.sample_car_spec(np.random.default_rng(seed), body_type))


def true_hubs(car) -> dict:
    """(front, left) -> the hub [3] in object space. A world wheel (cars._add_wheel) is rings symmetric about its
    hub plus one cap centre on each side of it, so the mean of its vertices is the hub exactly; its height is
    also checked against the spec: the wheel radius above the ground."""
    verts = car.verts.double().numpy()
    points = verts[np.unique(car.faces.numpy()[car.part_labels.numpy() == WHEEL_LABEL])]
    middle = 0.5 * (verts[:, 2].min() + verts[:, 2].max())
    hubs = {}
    for front, left in WHEEL_NAMES:
        hub = points[((points[:, 2] > middle) == front) & ((points[:, 0] > 0) == left)].mean(axis=0)
        assert hub[1] == pytest.approx(car.ground_y + car.params["wheel_radius"] * car.params["scale"], abs=1e-5)
        hubs[front, left] = hub
    return hubs


def errors_cm_and_radius(car, wheels) -> tuple[float, float]:
    """(largest hub error in cm, largest relative radius error) of ``wheels`` against ``car``'s true wheels."""
    hubs, scale = true_hubs(car), car.params["scale"]  # object units per metre
    centre_cm = max(np.linalg.norm(wheel.centre - hubs[wheel.front, wheel.left]) / scale * 100 for wheel in wheels)
    radius = max(abs(wheel.radius / (car.params["wheel_radius"] * scale) - 1) for wheel in wheels)
    return centre_cm, radius


@pytest.mark.parametrize("body_type", cars.BODY_TYPES)
def test_true_labels_find_the_four_wheels_within_a_centimetre(body_type):
    car = world_car(body_type, seed=3)
    wheels = fit_wheels(car.verts, car.faces, car.part_labels)
    assert [wheel.name for wheel in wheels] == ["wheel_front_left", "wheel_front_right", "wheel_rear_left",
                                                "wheel_rear_right"]
    assert [(wheel.front, wheel.left) for wheel in wheels] == list(WHEEL_NAMES)
    assert {wheel.source for wheel in wheels} == {"fitted"}
    centre_cm, radius = errors_cm_and_radius(car, wheels)
    assert centre_cm < 0.5 and radius < 0.01  # a 16-gon's moments: radius 0.6 % short
    scale = car.params["scale"]
    for wheel in wheels:
        assert wheel.width == pytest.approx(car.params["wheel_width"] * scale, rel=1e-4)
        assert (wheel.centre[0] > 0) == wheel.left and (wheel.centre[2] > 0) == wheel.front
        # Wheels touch the ground: the lowest point of the car.
        assert wheel.centre[1] - wheel.radius == pytest.approx(car.ground_y, abs=0.02 * wheel.radius)


def test_left_is_plus_x_in_object_space_and_plus_x_in_blender():
    from ganverse3d.geometry import object_to_blender

    car = world_car("sedan", seed=0)
    front_left = fit_wheels(car.verts, car.faces, car.part_labels)[0]
    # Blender: front towards -Y, up +Z; the car's right is forward x up = (0,-1,0) x (0,0,1) = (-1, 0, 0).
    x, y, _ = object_to_blender(front_left.centre)
    assert front_left.name == "wheel_front_left" and x > 0 and y < 0


def test_pairs_are_mirror_images():
    car = world_car("suv", seed=5)
    labels = car.part_labels.clone()
    labels[torch.from_numpy(np.random.default_rng(0).random(len(labels)) < 0.3) & (labels == WHEEL_LABEL)] = BODY_LABEL
    front_left, front_right, rear_left, rear_right = fit_wheels(car.verts, car.faces, labels)
    for left, right in ((front_left, front_right), (rear_left, rear_right)):
        assert np.array_equal(left.centre * (-1, 1, 1), right.centre)
        assert (left.radius, left.width) == (right.radius, right.width)


@pytest.mark.parametrize("body_type", cars.BODY_TYPES)
def test_a_blotchy_labelling_still_finds_the_wheels(body_type):
    car = world_car(body_type, seed=7)
    wheel_faces = car.part_labels == WHEEL_LABEL
    rng = np.random.default_rng(1)
    # 30 % of the wheel faces lost, and a few stray wheel labels on the roof and across the car's middle.
    labels = car.part_labels.clone()
    labels[wheel_faces & torch.from_numpy(rng.random(len(labels)) < 0.3)] = BODY_LABEL
    centroids = car.verts[car.faces].mean(1)
    labels[torch.topk(centroids[:, 1], 3).indices] = WHEEL_LABEL
    wheels = fit_wheels(car.verts, car.faces, labels)
    assert {wheel.source for wheel in wheels} == {"fitted"}
    centre_cm, radius = errors_cm_and_radius(car, wheels)
    assert centre_cm < 4.0 and radius < 0.06  # 20 cars of each type: at most 3.0 cm and 4.6 % (bm_wheels.py)


def test_a_wheel_without_faces_is_its_partner_mirrored():
    car = world_car("hatchback", seed=2)
    centroids = car.verts[car.faces].mean(1)
    labels = car.part_labels.clone()
    labels[(labels == WHEEL_LABEL) & (centroids[:, 0] > 0) & (centroids[:, 2] > 0)] = BODY_LABEL
    wheels = fit_wheels(car.verts, car.faces, labels)
    assert [wheel.source for wheel in wheels] == ["mirrored", "fitted", "fitted", "fitted"]
    centre_cm, radius = errors_cm_and_radius(car, wheels)
    assert centre_cm < 1.0 and radius < 0.02


def test_two_equal_clusters_far_apart_on_one_side_count_as_no_wheel_there():
    # Three faces of the front-left wheel and three body faces by the sill labelled wheel: the median along the car
    # falls between the clusters, the stray filter keeps none of them, and the wheel is its partner mirrored.
    car = world_car("sedan", seed=3)
    centroids = car.verts[car.faces].mean(1)
    labels = car.part_labels.clone()
    front_left = ((labels == WHEEL_LABEL) & (centroids[:, 0] > 0) & (centroids[:, 2] > 0)).nonzero().flatten()
    front_left = front_left[centroids[front_left, 2].argsort(descending=True)]  # the three frontmost stay wheel
    labels[front_left[3:]] = BODY_LABEL
    length = float(car.verts[:, 2].max() - car.verts[:, 2].min())
    middle = float(car.verts[:, 2].max() + car.verts[:, 2].min()) / 2
    wheel_z = float(centroids[front_left[:3], 2].mean())
    sill = ((labels == BODY_LABEL) & (centroids[:, 0] > 0) & (centroids[:, 2] < wheel_z - 0.25 * length)
            & (centroids[:, 2] > middle)).nonzero().flatten()
    assert len(sill) >= 3
    labels[sill[:3]] = WHEEL_LABEL
    wheels = fit_wheels(car.verts, car.faces, labels)
    assert [wheel.source for wheel in wheels] == ["mirrored", "fitted", "fitted", "fitted"]


def test_without_wheel_labels_the_bounding_box_prior_places_the_wheels():
    car = world_car("sedan", seed=4)
    centroids = car.verts[car.faces].mean(1)
    front_gone = car.part_labels.clone()
    front_gone[(front_gone == WHEEL_LABEL) & (centroids[:, 2] > 0)] = BODY_LABEL
    wheels = fit_wheels(car.verts, car.faces, front_gone)
    assert [wheel.source for wheel in wheels] == ["prior", "prior", "fitted", "fitted"]
    assert errors_cm_and_radius(car, wheels)[0] < 25.0  # the prior's hub share varies by 0.015 L = 7 cm
    wheels = fit_wheels(car.verts, car.faces, torch.zeros_like(car.part_labels))
    assert {wheel.source for wheel in wheels} == {"prior"}
    centre_cm, radius = errors_cm_and_radius(car, wheels)
    assert centre_cm < 25.0 and radius < 0.2


def wrapped_template(car) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inverse network's kind of mesh for ``car``: the 642-vertex template sphere shrink-wrapped onto the
    car's outer surface, each face labelled as the car's face nearest its centre. (verts, faces, part_labels)."""
    sphere = template_sphere()
    verts = (sphere.verts.double() * shrink_wrap(sphere.verts, car.verts, car.faces)[:, None]).float()
    nearest = torch.cdist(verts[sphere.faces].mean(1), car.verts[car.faces].mean(1)).argmin(1)
    return verts, sphere.faces, car.part_labels[nearest]


def test_a_template_sphere_wrapped_onto_a_car_gives_wheels_within_a_radius():
    """On the template's resolution the wheel regions are a dozen coarse faces that also take in some of the arch
    around the tyre: hubs within 15 cm, radii within 30 % (20 cars of each type: at most 12.6 cm and 26 %,
    benchmarks/bm_wheels.py)."""
    car = world_car("sedan", seed=0)
    wheels = fit_wheels(*wrapped_template(car))
    assert {wheel.source for wheel in wheels} == {"fitted"}
    centre_cm, radius = errors_cm_and_radius(car, wheels)
    assert centre_cm < 15.0 and radius < 0.3


def test_bad_shapes_are_refused():
    car = world_car("sedan", seed=0)
    with pytest.raises(ValueError, match="part_labels"):
        fit_wheels(car.verts, car.faces, car.part_labels[:-1])
    with pytest.raises(ValueError, match="no extent"):
        fit_wheels(car.verts * torch.tensor([1.0, 1.0, 0.0]), car.faces, car.part_labels)


# ---------------------------------------------------------------------------------------------------
# Wheel meshes


def signed_volume(vertices, faces) -> float:
    corners = vertices[faces]
    return float(np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6)


@pytest.mark.parametrize("outward", [1.0, -1.0])
def test_the_wheel_mesh_is_closed_outward_and_the_right_size(outward):
    radius, width = 0.3, 0.2
    vertices, faces, materials = wheel_mesh(radius, width, outward, segments=40, spokes=5)
    directed = np.concatenate((faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]))
    edges = set(map(tuple, directed.tolist()))
    assert len(edges) == len(directed)  # no directed edge twice: consistently oriented
    assert all((j, i) in edges for i, j in edges)  # every edge has its twin: closed
    # Outward normals: positive volume, a little less than the full cylinder's (the rim is dished in).
    assert 0.75 * np.pi * radius ** 2 * width < signed_volume(vertices, faces) < np.pi * radius ** 2 * width
    assert np.hypot(vertices[:, 1], vertices[:, 2]).max() == pytest.approx(radius)
    assert np.ptp(vertices[:, 0]) == pytest.approx(width)
    centroids = vertices[faces].mean(1)
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    tread = np.abs(centroids[:, 0]) < 0.25 * width
    assert (np.einsum("ij,ij->i", normals[tread][:, 1:], centroids[tread][:, 1:]) > 0).all()
    # The rim is on the outer side, the tyre all round.
    assert set(materials.tolist()) == {TYRE_MATERIAL, RIM_MATERIAL}
    rim_x = centroids[materials == RIM_MATERIAL, 0] * outward
    assert (rim_x > 0).all() and np.hypot(*centroids[materials == RIM_MATERIAL, 1:].T).max() < 0.7 * radius


def test_a_right_wheel_is_the_left_one_mirrored():
    left, left_faces, left_materials = wheel_mesh(0.3, 0.2, 1.0)
    right, right_faces, right_materials = wheel_mesh(0.3, 0.2, -1.0)
    assert np.array_equal(right, left * (-1, 1, 1))
    assert np.array_equal(right_faces, left_faces[:, ::-1]) and np.array_equal(right_materials, left_materials)


def test_bad_wheel_sizes_are_refused():
    with pytest.raises(ValueError):
        wheel_mesh(0.0, 0.2)
    with pytest.raises(ValueError):
        wheel_mesh(0.3, 0.2, outward=0.5)


# ---------------------------------------------------------------------------------------------------
# Pull-in


def test_pull_in_hides_the_wheel_blobs_behind_the_new_wheels_and_relabels_them():
    car = world_car("pickup", seed=1)
    wheels = fit_wheels(car.verts, car.faces, car.part_labels)
    verts, labels = pull_in_wheels(car.verts, car.faces, car.part_labels, wheels)
    assert verts.shape == tuple(car.verts.shape) and labels.shape == tuple(car.part_labels.shape)
    assert not (labels == WHEEL_LABEL).any()
    was_wheel = (car.part_labels == WHEEL_LABEL).numpy()
    assert np.array_equal(labels[~was_wheel], car.part_labels.numpy()[~was_wheel])
    assert (labels[was_wheel] == BODY_LABEL).all()
    moved = np.any(verts != car.verts.numpy(), axis=1)
    wheel_vertices = np.unique(car.faces.numpy()[was_wheel])
    assert set(np.flatnonzero(moved)) <= set(wheel_vertices.tolist())
    assert np.array_equal(verts[:, 1:], car.verts.numpy()[:, 1:])  # only x moves, and only inward
    assert (np.abs(verts[:, 0]) <= np.abs(car.verts.numpy()[:, 0])).all()
    # The world's wheels are their own closed cylinders: every one of their vertices ends inside its wheel's
    # inner face.
    for wheel in wheels:
        points = verts[wheel_vertices]
        own = (np.sign(points[:, 0]) == wheel.outward) & (
            np.hypot(points[:, 1] - wheel.centre[1], points[:, 2] - wheel.centre[2]) <= wheel.radius * 1.001)
        assert own.sum() > 50
        assert (np.abs(points[own, 0]) < wheel.inner_x).all()


def test_stray_wheel_labels_far_from_every_wheel_stay_where_they_are():
    car = world_car("sedan", seed=2)
    labels = car.part_labels.clone()
    roof = torch.topk(car.verts[car.faces].mean(1)[:, 1], 4).indices
    labels[roof] = WHEEL_LABEL
    wheels = fit_wheels(car.verts, car.faces, labels)
    verts, new_labels = pull_in_wheels(car.verts, car.faces, labels, wheels)
    roof_vertices = car.faces[roof].reshape(-1).numpy()
    assert np.array_equal(verts[roof_vertices], car.verts.numpy()[roof_vertices])
    assert (new_labels[roof.numpy()] == BODY_LABEL).all()
