"""The varied synthetic world: families, camera poses, moving objects, clearance, and that pixel position alone
no longer predicts depth."""

import dataclasses

import numpy as np
import pytest

from dae_jax.data.synthetic.generate import generate_dataset, generate_sequence
from dae_jax.data.synthetic.render import Camera, Renderer, Trajectory
from dae_jax.data.synthetic.scene import SOLID, Box, Ground, Scene, Texture
from dae_jax.data.synthetic.world import CLEARANCE, FAMILIES, make_world

TINY = {"height": 36, "width": 48, "subframes_per_frame": 4}


def solid(value: float) -> Texture:
    return Texture(SOLID, 1.0, (value,) * 3, (value,) * 3)


def still(**angles: float) -> Trajectory:
    """A camera at 1.5 m with no sway or wobble, so its pose is the fixed angles alone."""
    return Trajectory(speed=2.0, height=1.5, sway_amplitude=0.0, yaw_amplitude=0.0, pitch_amplitude=0.0, **angles)


def test_heading_pitch_roll_turn_the_camera_as_named():
    forward, right = np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])
    rot, origin = still(heading=np.pi / 2).pose(0.0)
    np.testing.assert_allclose(rot @ forward, [1, 0, 0], atol=1e-12)  # looking along +x
    np.testing.assert_allclose(origin, [0, 1.5, 0])
    rot, _ = still(pitch=0.3).pose(0.0)
    np.testing.assert_allclose(rot @ forward, [0, -np.sin(0.3), np.cos(0.3)], atol=1e-12)  # + looks down
    rot, _ = still(roll=0.2).pose(0.0)
    np.testing.assert_allclose(rot @ forward, [0, 0, 1], atol=1e-12)  # roll keeps the optical axis
    np.testing.assert_allclose(rot @ right, [np.cos(0.2), -np.sin(0.2), 0], atol=1e-12)  # + lowers the right side
    rot, _ = still(heading=0.4, pitch=-0.2, roll=0.7).pose(1.3)
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(-1.0)  # image y points down: a left-handed camera frame


def test_a_moving_box_is_where_its_velocity_puts_it():
    camera = Camera(40, 60, 30.0, 30.0, 30.0, 20.0)
    box = Box((-0.5, 1.0, 9.5), (0.5, 2.0, 10.5), solid(0.7), velocity=(1.0, 0.0, -2.0))
    scene = Scene(Ground(4.0, 2.0, *(solid(0.3),) * 4, 6.0), (box,), (), (0.5, 0.6, 0.9), (0.0, 1.0, 0.0))
    renderer = Renderer(scene, camera)
    look = np.diag([1.0, -1.0, 1.0])
    for t in (0.0, 1.0, 0.0):  # back to t = 0 too: nothing accumulates
        _, depth = renderer.render(look, np.array([0.0, 1.5, 0.0]), t=t)
        near_face = 9.5 - 2.0 * t
        centre_u = 30.0 + 30.0 * (1.0 * t) / near_face
        assert depth[20, int(round(centre_u))] == pytest.approx(near_face, rel=1e-5)
        columns = np.flatnonzero(np.isclose(depth[20], near_face, rtol=1e-5))
        assert columns.min() >= 30 + 30 * (t - 0.5) / near_face - 1
        assert columns.max() <= 30 + 30 * (t + 0.5) / near_face + 1


def _distance_to_box(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Euclidean distance from points (N, 3) to boxes (N, 3) via the nearest point of the box."""
    return np.linalg.norm(points - np.clip(points, lo, hi), axis=-1)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_keeps_its_objects_off_the_camera(family):
    duration = 2.0
    for seed in range(3):
        world = make_world(seed, duration, family=family)
        assert world.family == family and world.trajectory.speed > 0
        times = np.linspace(0.0, duration, 1001)
        clearance = CLEARANCE["clutter" if family == "clutter" else "other"]
        cams = np.stack([world.trajectory.pose(t)[1] for t in times])
        for box in world.scene.boxes:
            shift = times[:, None] * np.asarray(box.velocity)
            gap = _distance_to_box(cams, np.asarray(box.lo) + shift, np.asarray(box.hi) + shift)
            assert gap.min() > clearance - 0.05, (family, seed, box)
        for sphere in world.scene.spheres:
            centres = np.asarray(sphere.center) + times[:, None] * np.asarray(sphere.velocity)
            assert (np.linalg.norm(cams - centres, axis=1) - sphere.radius).min() > clearance - 0.05


def test_families_are_what_they_say():
    for seed in range(4):
        room = generate_sequence(seed, num_frames=2, family="room", **TINY)
        assert (room["depth"] > 0).all(), "a closed room shows no sky"
        assert np.percentile(room["depth"], 95) < 15.0
        street = generate_sequence(seed, num_frames=2, family="street", **TINY)
        assert np.percentile(street["depth"][street["depth"] > 0], 95) > 15.0
    moving = [make_world(seed, 2.0, family="clutter") for seed in range(10)]
    assert any(any(np.any(b.velocity) for b in w.scene.boxes) or any(np.any(s.velocity) for s in w.scene.spheres)
               for w in moving), "some worlds have independently moving objects"
    with pytest.raises(ValueError, match="unknown scene family 'cave'"):
        make_world(0, 1.0, family="cave")


def test_camera_poses_vary_between_sequences():
    worlds = [make_world(seed, 2.0, family=FAMILIES[seed % len(FAMILIES)]) for seed in range(40)]
    poses = np.array([[w.trajectory.height, w.trajectory.heading, w.trajectory.pitch, w.trajectory.roll]
                      for w in worlds])
    assert np.ptp(poses[:, 0]) > 0.8 and np.ptp(poses[:, 1]) > 1.5
    assert np.ptp(poses[:, 2]) > 0.3 and np.ptp(poses[:, 3]) > 0.2


def test_dataset_cycles_through_families_and_refuses_unknown_ones():
    runs = list(generate_dataset(3, {"train": 6}, frames_per_sequence=1, workers=1, **TINY))
    assert [seq["family"] for _, _, seq in runs] == [*FAMILIES, FAMILIES[0]]
    chosen = list(generate_dataset(3, {"test": 2}, frames_per_sequence=1, workers=1, families=("room",), **TINY))
    assert [seq["family"] for _, _, seq in chosen] == ["room", "room"]
    with pytest.raises(ValueError, match="families"):
        next(generate_dataset(3, {"test": 1}, families=("street", "moon")))


def test_pixel_position_does_not_give_depth():
    """Over one frame of each of 15 sequences, the per-pixel mean log depth (the no-input guess) is far from
    most frames: log depth varies across sequences at every pixel as much as within a frame."""
    frames = [seq["depth"][0] for _, _, seq in generate_dataset(
        11, {"train": 15}, frames_per_sequence=1, workers=1, **TINY)]
    logs = np.log(np.where(np.stack(frames) > 0, np.stack(frames), 100.0))
    across = logs.std(axis=0).mean()  # per pixel, over sequences
    within = np.mean([f.std() for f in logs])  # per frame, over pixels
    assert across > within, (across, within)  # 1.33x here; 0.74x for streets alone


def test_sequences_are_deterministic_with_moving_objects():
    a = generate_sequence(4, num_frames=2, family="open", **TINY)
    b = generate_sequence(4, num_frames=2, family="open", **TINY)
    for key in ("rgb", "depth"):
        np.testing.assert_array_equal(a[key], b[key])
    assert dataclasses.asdict(make_world(4, 2.0)) == dataclasses.asdict(make_world(4, 2.0))


def test_frames_without_events_are_the_frames_of_the_event_run():
    """with_events=False renders only at frame times: the same RGB, depth and timestamps as the full run, no events."""
    full = generate_sequence(11, num_frames=3, family="clutter", **TINY)
    frames = generate_sequence(11, num_frames=3, family="clutter", with_events=False, **TINY)
    assert full["events"]["t"].size > 0 and frames["events"]["t"].size == 0
    for key in ("rgb", "depth", "frame_timestamps_us", "intrinsics"):
        np.testing.assert_array_equal(frames[key], full[key])
    assert frames["events"]["x"].dtype == full["events"]["x"].dtype


def _textures(scene: Scene) -> list[Texture]:
    g = scene.ground
    return [g.asphalt, g.sidewalk, g.verge, g.marking, *(b.texture for b in scene.boxes),
            *(s.texture for s in scene.spheres)]


@pytest.mark.parametrize("family", ["street", "room"])
def test_speed_and_texture_scales_change_only_what_they_name(family):
    """texture_scale multiplies every texture period after the draws: the same layout, colours and lighting as the
    unscaled world of the seed. speed_scale multiplies the camera's speed and keeps its pose (the scene then spans
    the longer path)."""
    base = make_world(7, 0.3, family=family)
    textured = make_world(7, 0.3, family=family, texture_scale=0.4)
    before, after = _textures(base.scene), _textures(textured.scene)
    assert len(before) == len(after) > 4
    for a, b in zip(before, after, strict=True):
        assert b.period == pytest.approx(0.4 * a.period)
        assert dataclasses.replace(b, period=a.period) == a
    assert [x.lo for x in textured.scene.boxes] == [x.lo for x in base.scene.boxes]
    assert textured.scene.sky_color == base.scene.sky_color and textured.trajectory == base.trajectory
    fast = make_world(7, 0.3, family=family, speed_scale=3.0)
    assert fast.trajectory.speed == pytest.approx(3.0 * base.trajectory.speed)
    assert dataclasses.replace(fast.trajectory, speed=base.trajectory.speed) == base.trajectory
    with pytest.raises(ValueError, match="texture_scale"):
        make_world(7, 0.3, texture_scale=0.0)


def test_finer_textures_and_faster_camera_fire_more_events():
    """What the scales are for: more of the image fires within a frame's window."""
    def fired_share(**scales: float) -> float:
        seq = generate_sequence(5, num_frames=2, family="room", **TINY, **scales)
        window = seq["events"]["t"] >= seq["frame_timestamps_us"][0]
        return len(set(zip(seq["events"]["x"][window], seq["events"]["y"][window], strict=True))) / (36 * 48)

    assert fired_share(texture_scale=0.4) > 1.2 * fired_share()
    assert fired_share(speed_scale=3.0) > 1.2 * fired_share()
