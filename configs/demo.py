"""The embedded default: the Depth AnyEvent paradigm end to end on the synthetic world, on one CPU machine.

  python launch.py --config=configs/demo.py --workdir=runs/demo --mode=demo

Stages (dae_jax/demo.py): build the synthetic event world -> the teacher: a tiny frame model of the DAv2
architecture (the stand-in for the foundation model), shipped as dae_jax/assets/demo_teacher.msgpack after training
on a frame world of its own (scripts/demo_teacher.py) -> store its proxy labels -> distil a DepthAnyEvent (DAv2)
student from them, starting from the teacher's weights, and a DepthAnyEvent-R student continuing from it -> train
the same students supervised ->
evaluate everything with the controls -> export the distilled students to PyTorch and check them against the
reference. With the real teacher:
  --config.teacher.checkpoint=depth_anything_v2_vitl.pth --config.loss.teacher_scale=relative
  (the encoder is read from the weights)

The top-level keys are the students' shared settings (as in every other config); `demo` holds what differs per
stage. Every size here is for the demo only: the tiny encoder and short schedules fit 2 CPU cores in minutes.
"""

import os

import ml_collections

import dae_jax
from configs import common

ASSETS = os.path.join(os.path.dirname(os.path.abspath(dae_jax.__file__)), "assets")  # files shipped with the package


def get_config():
    """Tiny models at 70x98, 126x168 crops of a 200+20 sequence synthetic world at 130x173; 600 steps per DAv2
    student, 300 more for each DepthAnyEvent-R on top of it."""
    c = common.get_config()
    c.model.update(encoder="tiny", input_size_width=98, input_size_height=70)
    c.data.update(batch_size=8, crop=(126, 168))
    c.optim.update(lr=1e-3, encoder_lr=1e-3, warmup_steps=20)
    c.train.update(num_steps=600, log_every=50, checkpoint_every=100, picture_every=0)
    c.eval.update(batch_size=8, pictures=3, gif=False)
    # The synthetic ground truth is 0 where the ray meets the sky: far, not unknown (as EventScape's far plane).
    c.loss.sky_as_far = True
    # Each ground-truth image scaled so its farthest point is at the clip distance, as the protocol scores it (rooms
    # a few metres deep would otherwise sit below the 1.97 m where log-depth labels start); the stand-in teacher
    # learns the same.
    c.loss.rescale_ground_truth = True
    # The protocol divides each prediction by its maximum before it scores; the students are trained on the same
    # anchored prediction, with the level counted (si_lambda 1, demo.si_lambda).
    c.loss.anchor_at_max = True
    # 1 - sigmoid: the log-depth output is bounded to the labels' [0, 1], so the sky saturates at the far end
    # that the protocol's per-frame max normalisation reads the scale from.
    c.model.activation = "sigmoid"
    # DepthAnyEvent-R's recurrent layers (which the teacher's weights do not hold) start as a pass-through, so the
    # student starts as the teacher it extends instead of handing the teacher's head random mixtures of its features.
    c.train.recurrent_init = "passthrough"
    # The stand-in for the foundation model: a frame model of the DAv2 architecture (tiny encoder) that predicts
    # log depth as the students do, trained on the RGB frames of its own world (demo.teacher). Its output is the
    # label itself (config.loss.teacher_scale 'logdepth').
    c.teacher.model = dict(model_type="DAv2", encoder="tiny", official=False, activation="sigmoid",
                           inv_prediction=True, input_size_width=98, input_size_height=70)
    c.loss.teacher_scale = "logdepth"
    c.demo = ml_collections.ConfigDict(dict(
        # The synthetic world (tfds_builders.synthetic_events.SyntheticConfig); built once under data_dir.
        data_dir="",  # "" -> <workdir>/data
        # Many short sequences (each a scene of its own) at half the DAVIS346 size: 200 x 4 training frames and
        # 20 x 4 test frames, 4 sequences per scene family. Events in the 100 ms before each frame, the camera at 3x
        # the families' speeds (street and open ground 6-18 m/s, rooms 1.8-4.8 m/s) and textures at 0.4x their
        # periods: what lets events carry depth (motion parallax over the surfaces, not only their outlines). The
        # README's "Results of the demo" measures each.
        dataset=dict(name="demo_events_130x173", num_train=200, num_test=20, frames_per_sequence=4, seed=0,
                     height=130, width=173, window_ms=100.0, speed_scale=3.0, texture_scale=0.4),
        teacher=dict(
            # The stand-in teacher's weights, shipped with the package as DAv2's are downloaded; "" trains it in
            # the demo's teacher stage (19 minutes here), as scripts/demo_teacher.py made the shipped file.
            weights=os.path.join(ASSETS, "demo_teacher.msgpack"),
            # Its own world: RGB + depth only, 800 scenes x 3 frames, other seeds than the event world's, so it has
            # seen none of the students' test scenes (a foundation model is trained on other data).
            world=dict(name="demo_teacher_frames", num_train=800, num_test=0, frames_per_sequence=3, seed=1),
            steps=2500, lr=1e-3, warmup_steps=100, crop=(252, 336),
            si_lambda=1.0,  # absolute log depth: its labels keep the level the protocol's anchor reads
            anchor_at_max=False,
        ),
        # Distil from the teacher's labels stored once (stage "label") rather than running it in every step.
        stored_labels=True,
        # Students start from the stand-in teacher's weights (the paper's VFM adaptation: DepthAnyEvent is DAv2
        # fine-tuned on events; DepthAnyEvent-R's recurrent layers as train.recurrent_init says). False, or given
        # teacher weights: from config.checkpoint (random if empty).
        init_from_teacher=True,
        # DepthAnyEvent-R trains on clips of 2 consecutive stacks, 4 clips per batch: as many frames as the DAv2
        # students' batch of 8, from twice as many scenes as clips of 4 would hold.
        recurrent_clip_length=2,
        recurrent_batch_size=4,
        # DepthAnyEvent-R extends DepthAnyEvent: it starts from the DAv2 student of its objective (its recurrent
        # layers as train.recurrent_init says) and trains recurrent_num_steps on clips. False (or no DAv2 student
        # in `students`): from the teacher, for train.num_steps, like the DAv2 student.
        recurrent_from_dav2=True,
        recurrent_num_steps=300,
        students=("dav2", "recdav2"),
        objectives=("distill", "supervised"),
        # The loss's si_lambda per objective: 1 counts the level of the anchored log depth, which the labels of
        # both kinds (ground truth rescaled to the clip, the stand-in's log depth) fix.
        si_lambda=dict(distill=1.0, supervised=1.0),
        parity_frames=4,  # test frames predicted by both the exported PyTorch model and the JAX one
        picture_sequences=5,  # comparison.png shows the first 5 test sequences: one of each scene family
        # The demo fails (after writing its results) unless every trained model (each <student>/distill and
        # <student>/supervised row) has Abs Rel <= abs_rel_ratio x the no-input row's and δ<1.25 >= the no-input
        # row's + delta1_gain; each distilled student beats its <student>/distill_no_events row (lower Abs Rel and
        # higher δ<1.25); and each supervised student beats the distilled one of its kind on Abs Rel.
        margins=dict(check=True, abs_rel_ratio=0.75, delta1_gain=0.15),
    ))
    return c
