"""Procedural cars: closed outward meshes, one topology, conventions (unit sphere, front +Z, ground), labels."""

import numpy as np
import pytest
import torch

from ganverse3d.geometry import face_normals
from ganverse3d.world import BODY_TYPES, PART_LABELS, TEXTURE_SIZE, UNIT_SPHERE_RADIUS, build_car, car_faces, sample_car
from ganverse3d.world.cars import HEADLIGHT, PLATE, TAILLIGHT, WHEEL, WINDOW, batch_cars, sample_car_spec

SEEDS = (0, 1, 2)


def cars_of(body_type):
    return [sample_car(np.random.default_rng(seed), body_type) for seed in SEEDS]


def components(faces: np.ndarray, num_verts: int) -> np.ndarray:
    """Connected component id per face (faces sharing a vertex are connected)."""
    parent = np.arange(num_verts)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, c in faces:
        for u, v in ((a, b), (b, c)):
            root_u, root_v = find(u), find(v)
            if root_u != root_v:
                parent[root_u] = root_v
    return np.array([find(a) for a in faces[:, 0]])


@pytest.mark.parametrize("body_type", BODY_TYPES)
def test_every_body_type_is_closed_with_outward_normals_and_all_parts(body_type):
    for car in cars_of(body_type):
        faces = car.faces.numpy()
        # Closed and consistently wound: every directed edge occurs exactly once, and so does its reverse.
        directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        unique, counts = np.unique(directed, axis=0, return_counts=True)
        assert counts.max() == 1
        assert len(np.unique(np.sort(directed, axis=1), axis=0)) * 2 == len(directed)
        assert set(map(tuple, unique[:, ::-1])) == set(map(tuple, unique))
        # Outward: every closed part encloses a positive volume (divergence theorem, counter-clockwise faces).
        tri = car.verts.double()[car.faces]
        signed = torch.einsum("fi,fi->f", tri[:, 0], torch.cross(tri[:, 1], tri[:, 2], dim=-1)).numpy() / 6
        part_of_face = components(faces, len(car.verts))
        volumes = np.bincount(np.unique(part_of_face, return_inverse=True)[1], weights=signed)
        assert len(volumes) >= 1 + 4 + 9  # body, four wheels, lights / plates / grille / mirrors
        assert (volumes > 0).all(), volumes
        assert set(car.part_labels.tolist()) == set(range(len(PART_LABELS)))


def test_all_cars_share_one_topology_of_a_few_thousand_faces():
    faces = car_faces()
    assert faces.dtype == torch.int64 and faces.shape[1] == 3 and 1000 < len(faces) <= 4000
    for body_type in BODY_TYPES:
        for car in cars_of(body_type):
            assert torch.equal(car.faces, faces)
            assert car.verts.shape == (int(faces.max()) + 1, 3) and car.verts.dtype == torch.float32
            assert car.face_uvs.shape == (len(faces), 3, 2) and car.part_labels.shape == (len(faces),)
            assert car.texture.shape == (3, TEXTURE_SIZE, TEXTURE_SIZE)
            assert 0 <= car.face_uvs.min() and car.face_uvs.max() <= 1
            assert 0 <= car.texture.min() and car.texture.max() <= 1
    verts, batch_faces, face_uvs, textures, labels = batch_cars(cars_of("suv") + cars_of("sports"))
    assert verts.shape[0] == face_uvs.shape[0] == textures.shape[0] == labels.shape[0] == 2 * len(SEEDS)
    assert torch.equal(batch_faces, faces)


@pytest.mark.parametrize("body_type", BODY_TYPES)
def test_cars_fill_the_unit_sphere_centred_and_stand_on_the_ground(body_type):
    for car in cars_of(body_type):
        radius = car.verts.norm(dim=1)
        assert radius.max() == pytest.approx(UNIT_SPHERE_RADIUS, abs=1e-5)
        low, high = car.verts.amin(0), car.verts.amax(0)
        assert torch.allclose((low + high) / 2, torch.zeros(3), atol=1e-5)
        # Longer than wide, and lying along Z.
        extent = high - low
        assert extent[2] > 1.8 * extent[0] and extent[2] > extent[1]
        wheel_verts = car.faces[car.part_labels == WHEEL].unique()
        assert car.verts[wheel_verts, 1].min() == pytest.approx(car.ground_y, abs=1e-5)
        assert low[1] == pytest.approx(car.ground_y, abs=1e-5)
        # Four wheels, each touching the ground with a vertex.
        wheel_faces = car.faces[car.part_labels == WHEEL].numpy()
        ids = components(wheel_faces, len(car.verts))
        lowest_per_wheel = [car.verts[wheel_faces[ids == i].ravel(), 1].min().item() for i in np.unique(ids)]
        assert len(lowest_per_wheel) == 4
        assert lowest_per_wheel == pytest.approx([car.ground_y] * 4, abs=1e-5)
        # The body clears the ground.
        body_verts = car.faces[car.part_labels != WHEEL].unique()
        assert car.verts[body_verts, 1].min() > car.ground_y + 0.02


def texture_at_face_centre(car, face_mask):
    """Texture colour [N, 3] at the UV centroid of the selected faces (nearest texel)."""
    uv = car.face_uvs[face_mask].mean(1)
    column = (uv[:, 0] * TEXTURE_SIZE).long().clamp(0, TEXTURE_SIZE - 1)
    row = (uv[:, 1] * TEXTURE_SIZE).long().clamp(0, TEXTURE_SIZE - 1)
    return car.texture[:, row, column].T


@pytest.mark.parametrize("body_type", BODY_TYPES)
def test_the_front_faces_plus_z_white_head_lights_red_tail_lights_plates_at_both_ends(body_type):
    for car in cars_of(body_type):
        centre = car.verts[car.faces].mean(1)
        normal = face_normals(car.verts, car.faces)
        z_min, z_max = car.verts[:, 2].min(), car.verts[:, 2].max()
        front_lights = car.part_labels == HEADLIGHT
        rear_lights = car.part_labels == TAILLIGHT
        # Head lights are all at the front, tail lights all at the rear (DatasetGAN's classes tell them apart).
        assert (centre[front_lights, 2] > 0).all() and (centre[rear_lights, 2] < 0).all()
        # The light faces facing outward sit at the very ends of the car.
        assert centre[front_lights & (normal[:, 2] > 0.9), 2].min() > z_max - 0.02
        assert centre[rear_lights & (normal[:, 2] < -0.9), 2].max() < z_min + 0.02
        white = texture_at_face_centre(car, front_lights & (normal[:, 2] > 0.9))
        red = texture_at_face_centre(car, rear_lights & (normal[:, 2] < -0.9))
        assert (white.min(1).values > 0.8).all()
        assert (red[:, 0] > 2 * red[:, 1]).all() and (red[:, 0] > 0.5).all()
        plates = car.part_labels == PLATE
        assert (centre[plates, 2] > z_max - 0.05).any() and (centre[plates, 2] < z_min + 0.05).any()
        # The windshield leans back: window faces facing forward and up exist.
        windows = car.part_labels == WINDOW
        assert ((normal[windows, 2] > 0.3) & (normal[windows, 1] > 0.3)).any()


def test_same_generator_state_same_car_and_body_types_are_distinct():
    first = sample_car(np.random.default_rng(7))
    again = sample_car(np.random.default_rng(7))
    for name in ("verts", "face_uvs", "texture", "part_labels"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert first.params == again.params
    other = sample_car(np.random.default_rng(8))
    assert not torch.equal(first.verts, other.verts)
    spec = sample_car_spec(np.random.default_rng(7))
    assert torch.equal(build_car(spec).verts, first.verts)
    # Proportions differ between body types: height / length.
    ratio = {t: np.mean([c.params["height"] / c.params["length"] for c in cars_of(t)]) for t in BODY_TYPES}
    assert ratio["sports"] < ratio["sedan"] < ratio["hatchback"] and ratio["pickup"] < ratio["suv"]
    with pytest.raises(ValueError):
        sample_car_spec(np.random.default_rng(0), "tractor")


def test_fixed_parameters_replace_their_draws_and_keep_the_rest_of_the_car():
    drawn = sample_car_spec(np.random.default_rng(3), "sedan")
    long_low = sample_car_spec(np.random.default_rng(3), "sedan", fixed={"length": 6.2, "height": 1.05})
    assert long_low.params["length"] == 6.2 and long_low.params["height"] == 1.05
    assert long_low.paint == drawn.paint and long_low.params["width"] == drawn.params["width"]
    car = build_car(long_low)
    extent = car.verts.max(0).values - car.verts.min(0).values  # x width, y height, z length (normalised units)
    drawn_extent = (lambda v: v.max(0).values - v.min(0).values)(build_car(drawn).verts)
    assert float(extent[2] / extent[1]) > 5 > 3.5 > float(drawn_extent[2] / drawn_extent[1])
    with pytest.raises(ValueError, match="Unknown car parameters"):
        sample_car_spec(np.random.default_rng(3), "sedan", fixed={"lenght": 6.2})
