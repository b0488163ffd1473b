"""The embedded synthetic dataset: determinism, analytic depth, ESIM on hand-made signals, event sanity."""

import numpy as np
import pytest

from dae_jax.data.synthetic.esim import EventSimulator, log_intensity, simulate_events
from dae_jax.data.synthetic.generate import generate_dataset, generate_sequence, sequence_seed, to_srgb8
from dae_jax.data.synthetic.render import Camera, Renderer, Trajectory
from dae_jax.data.synthetic.scene import SOLID, Box, Ground, Scene, Sphere, Texture, make_scene

SMALL = {"height": 48, "width": 64, "subframes_per_frame": 10}
C = 0.2


@pytest.fixture(scope="module")
def sequence():
    return generate_sequence(7, num_frames=3, family="street", **SMALL)


def solid(value: float) -> Texture:
    return Texture(SOLID, 1.0, (value,) * 3, (value,) * 3)


def analytic_scene() -> Scene:
    """Ground, one box straight ahead and one sphere to the left, all uniformly coloured; sun overhead."""
    ground = Ground(4.0, 2.0, solid(0.3), solid(0.3), solid(0.3), solid(0.3), 6.0)
    box = Box((-1.0, 0.0, 10.0), (1.0, 3.0, 12.0), solid(0.6))
    sphere = Sphere((-4.0, 1.5, 20.0), 1.0, solid(0.5))
    return Scene(ground, (box,), (sphere,), (0.5, 0.6, 0.9), (0.0, 1.0, 0.0), ambient=0.4)


def test_depth_matches_analytic_geometry():
    camera = Camera(64, 80, 50.0, 50.0, 40.0, 32.0)
    looking_along_z = np.diag([1.0, -1.0, 1.0])
    scene = analytic_scene()
    rgb, depth = Renderer(scene, camera).render(looking_along_z, np.array([0.0, 1.5, 0.0]))
    assert rgb.shape == (64, 80, 3) and depth.shape == (64, 80)
    assert rgb.dtype == np.float32 and depth.dtype == np.float32
    # Box front face z = 10: z-depth (not ray length) is 10 over its whole image footprint.
    np.testing.assert_allclose(depth[26:39, 36:45], 10.0, rtol=1e-5)
    # Ground rows below the horizon: z = height * fy / (v - cy).
    for v in (50, 63):
        np.testing.assert_allclose(depth[v, 2], 1.5 * 50.0 / (v - 32.0), rtol=1e-5)
    # Sphere centre seen at u = cx + fx * (-4 / 20) = 30: nearest point along that ray, as z-depth.
    ray = np.array([-0.2, 0.0, 1.0])
    centre_distance = np.linalg.norm([-4.0, 0.0, 20.0])
    np.testing.assert_allclose(depth[32, 30], (centre_distance - 1.0) / np.linalg.norm(ray), rtol=1e-5)
    # Sky: no depth, sky colour. Ground faces the overhead sun (fully lit); the box front gets ambient only.
    assert depth[0, 5] == 0 and np.allclose(rgb[0, 5], scene.sky_color)
    np.testing.assert_allclose(rgb[63, 2], 0.3, rtol=1e-5)
    np.testing.assert_allclose(rgb[35, 40], 0.6 * 0.4, rtol=1e-5)


def test_depth_beyond_cap_is_sky():
    camera = Camera(16, 16, 10.0, 10.0, 8.0, 8.0)
    scene = analytic_scene()
    near = Renderer(scene, camera).render(np.diag([1.0, -1.0, 1.0]), np.array([0.0, 1.5, 0.0]))[1]
    assert near[8, 8] == pytest.approx(10.0)
    far = Renderer(scene, camera).render(np.diag([1.0, -1.0, 1.0]), np.array([0.0, 1.5, -95.0]))[1]
    assert far[8, 8] == 0 and far.max() <= scene.max_depth


def test_generated_frames_depth_range_and_sky(sequence):
    depth, rgb = sequence["depth"], sequence["rgb"]
    assert depth.shape == (3, 48, 64) and depth.dtype == np.float32
    assert rgb.shape == (3, 48, 64, 3) and rgb.dtype == np.uint8
    valid = depth[depth > 0]
    assert valid.min() > 0.25 and valid.max() <= 100.0  # the camera flies >= 0.9 m high, 0.4 m from objects
    assert (depth[:, -1] > 0).all(), "bottom row is road"
    assert (depth == 0).any(), "some sky is visible"
    # 0 only for sky: the same scene rendered directly shows sky colour exactly where depth is 0.
    trajectory = Trajectory.random(np.random.default_rng(1))
    scene = make_scene(3, 10.0, trajectory.corridor_half_width)
    image, frame_depth = Renderer(scene, Camera.davis(48, 64)).render(*trajectory.pose(0.4))
    sky = to_srgb8(np.array(scene.sky_color, np.float32))
    assert (to_srgb8(image)[frame_depth == 0] == sky).all()
    assert 0 < (frame_depth == 0).mean() < 0.5


def test_generation_is_deterministic(sequence):
    again = generate_sequence(7, num_frames=3, family="street", **SMALL)
    other = generate_sequence(8, num_frames=3, family="street", **SMALL)
    for key in ("rgb", "depth", "frame_timestamps_us"):
        np.testing.assert_array_equal(sequence[key], again[key])
    for key in "xytp":
        np.testing.assert_array_equal(sequence["events"][key], again["events"][key])
    assert not np.array_equal(sequence["rgb"], other["rgb"])
    assert len(sequence["events"]["t"]) != len(other["events"]["t"])


def test_event_format_and_timeline(sequence):
    events, ts = sequence["events"], sequence["frame_timestamps_us"]
    assert {k: v.dtype for k, v in events.items()} == {
        "x": np.uint16, "y": np.uint16, "t": np.int64, "p": np.uint8}
    assert (np.diff(events["t"]) >= 0).all()
    assert events["x"].max() < 64 and events["y"].max() < 48
    assert set(np.unique(events["p"])) == {0, 1}
    assert ts.dtype == np.int64 and (np.diff(ts) == 50_000).all() and ts[0] >= 60_000
    assert events["t"][0] >= 0 and events["t"][-1] <= ts[-1]


def test_events_are_plentiful_and_on_edges():
    seq = generate_sequence(11, num_frames=3, height=64, width=80, subframes_per_frame=10, family="street")
    events, ts, depth = seq["events"], seq["frame_timestamps_us"], seq["depth"]
    for i in (1, 2):
        window = (events["t"] > ts[i - 1]) & (events["t"] <= ts[i])
        assert window.sum() > 0.05 * 64 * 80, "a moving camera fires many events"
        fired = np.zeros((64, 80), bool)
        fired[events["y"][window], events["x"][window]] = True
        luma = np.log(1.0 + seq["rgb"][i].astype(np.float32).mean(-1))
        gradient = np.hypot(*np.gradient(luma))
        assert gradient[fired].mean() > 1.5 * gradient[~fired].mean()
        # Flat regions stay silent: no event inside the sky (5x5-eroded) at both ends of the window.
        sky = np.pad((depth[i] == 0) & (depth[i - 1] == 0), 2)
        interior = np.lib.stride_tricks.sliding_window_view(sky, (5, 5)).all(axis=(-2, -1))
        assert interior.sum() > 20 and not fired[interior].any()


def test_esim_ramp_up_gives_interpolated_positive_events():
    frames = log_intensity(np.full((2, 1, 1), 0.5))
    frames[1] += 3.5 * C
    events = simulate_events(frames, [1000, 2000], contrast_threshold=C)
    np.testing.assert_array_equal(events["p"], [1, 1, 1])
    np.testing.assert_array_equal(events["t"], np.rint(1000 + 1000 * np.arange(1, 4) / 3.5))
    assert (events["x"] == 0).all() and (events["y"] == 0).all()


def test_esim_decrease_constant_and_reference_memory():
    sim = EventSimulator(np.zeros((2, 3), np.float32), 0, contrast_threshold=C)
    down = np.zeros((2, 3), np.float32)
    down[1, 2] = -2.5 * C
    events = sim.step(down, 100)
    np.testing.assert_array_equal(events["p"], [0, 0])
    np.testing.assert_array_equal(events["x"], [2, 2])
    np.testing.assert_array_equal(events["y"], [1, 1])
    np.testing.assert_array_equal(events["t"], [40, 80])
    assert len(sim.step(down, 200)["t"]) == 0, "constant image: no events"
    up = down.copy()
    up[1, 2] = -1.5 * C  # reference sits at -2C: +0.5C is below threshold
    assert len(sim.step(up, 300)["t"]) == 0
    up[1, 2] = -0.5 * C  # crosses -C at 50% of the interval
    events = sim.step(up, 400)
    np.testing.assert_array_equal(events["p"], [1])
    np.testing.assert_array_equal(events["t"], [350])


def test_esim_noise_events_and_sorting():
    frames = np.zeros((11, 20, 30), np.float32)
    frames[5:, :10, :] = 5.5 * C  # 300 pixels step up once: 5 events each
    events = simulate_events(frames, np.arange(11) * 10_000, contrast_threshold=C, noise_rate_hz=5.0, seed=3)
    assert (np.diff(events["t"]) >= 0).all()
    assert (events["x"] < 30).all() and (events["y"] < 20).all()
    expected_noise = 5.0 * 600 * 0.1
    noise = len(events["t"]) - 5 * 300
    assert 0.5 * expected_noise < noise < 1.5 * expected_noise
    assert (events["t"] >= 0).all() and (events["t"] <= 100_000).all()


def test_dataset_names_seeds_and_splits():
    runs = [list(generate_dataset(5, {"train": 2, "test": 1}, frames_per_sequence=1, workers=w, **SMALL))
            for w in (1, 2)]
    assert [(split, name) for split, name, _ in runs[0]] == [
        ("train", "synth_train_000"), ("train", "synth_train_001"), ("test", "synth_test_000")]
    for (_, _, a), (_, _, b) in zip(*runs, strict=True):
        np.testing.assert_array_equal(a["rgb"], b["rgb"])
    seeds = {sequence_seed(5, split, i) for split in ("train", "test") for i in range(3)}
    assert len(seeds) == 6
    assert not np.array_equal(runs[0][0][2]["rgb"], runs[0][2][2]["rgb"])
