"""The embedded default: the Depth AnyEvent paradigm end to end on the synthetic world, on one CPU machine.

  python launch.py --config=configs/demo.py --workdir=runs/demo --mode=demo

Stages (dae_jax/demo.py): build the synthetic dataset -> train a tiny frame teacher of the DAv2 architecture on RGB
(the stand-in for the foundation model) -> distil DepthAnyEvent (DAv2) and DepthAnyEvent-R students from its
proxy labels -> train the same students supervised -> evaluate everything -> export the distilled student to
PyTorch and check it against the reference. With the real teacher the stand-in is not trained:
  --config.teacher.checkpoint=depth_anything_v2_vitl.pth  (the encoder is read from the weights)

The top-level keys are the students' shared settings (as in every other config); `demo` holds what differs per
stage. Every size here is for the demo only: the tiny encoder and short schedules fit 2 CPU cores in minutes.
"""

import ml_collections

from configs import common


def get_config():
    """Tiny models at 70x98, 252x336 crops of a 60+10 sequence synthetic world, ~300 steps per model."""
    c = common.get_config()
    c.model.update(encoder="tiny", input_size_width=98, input_size_height=70)
    c.data.update(batch_size=8, crop=(252, 336))
    c.optim.update(lr=3e-4, encoder_lr=3e-4, warmup_steps=20)
    c.train.update(num_steps=300, log_every=50, checkpoint_every=100, picture_every=0)
    c.eval.update(batch_size=8, pictures=3, gif=False)
    # The synthetic ground truth is 0 where the ray meets the sky: far, not unknown (as EventScape's far plane).
    c.loss.sky_as_far = True
    # Each ground-truth image scaled so its farthest point is at the clip distance, as the protocol scores it (rooms
    # a few metres deep would otherwise sit below the 1.97 m where log-depth labels start); the stand-in teacher
    # learns the same and its output is read as metric inverse depth.
    c.loss.update(rescale_ground_truth=True, teacher_scale="metric")
    # 1 - sigmoid: the log-depth output is bounded to the labels' [0, 1], so the sky saturates at the far end
    # that the protocol's per-frame max normalisation reads the scale from.
    c.model.activation = "sigmoid"
    # The stand-in teacher: official DAv2 semantics (ReLU inverse-depth output), tiny encoder, trained here on metric
    # inverse depth (demo.teacher_loss).
    c.teacher.model = dict(model_type="DAv2", encoder="tiny", official=True, input_size_width=98,
                           input_size_height=70)
    c.demo = ml_collections.ConfigDict(dict(
        # The synthetic world (tfds_builders.synthetic_events.SyntheticConfig); built once under data_dir.
        data_dir="",  # "" -> <workdir>/data
        dataset=dict(name="demo_tencode", num_train=60, num_test=10, frames_per_sequence=10, seed=0),
        teacher_steps=600,  # stage (a): supervised on RGB + ground truth, log inverse-depth loss
        # Its config.loss.disparity_loss: 'log' of metric inverse depth, so its labels keep the scale
        # (config.loss.teacher_scale 'metric' below); SSI collapses from scratch, see step.py.
        teacher_loss="log",
        teacher_lr=1e-4,  # its learning rate (higher rates let its ReLU output die in the varied world)
        teacher_output_bias=1.0,  # config.train.output_bias_init of the teacher: its ReLU output starts alive
        # Distil from the teacher's labels stored once (stage "label") rather than running it in every step.
        stored_labels=True,
        # Students start from the stand-in teacher's weights (the paper's VFM adaptation: DepthAnyEvent is DAv2
        # fine-tuned on events; DepthAnyEvent-R's recurrent layers start fresh). False, or given teacher weights:
        # from config.checkpoint (random if empty).
        init_from_teacher=True,
        recurrent_clip_length=4,  # DepthAnyEvent-R trains on clips of 4 consecutive stacks,
        recurrent_batch_size=2,  # 2 clips per batch: as many frames as the DAv2 students' batch of 8
        students=("dav2", "recdav2"),
        objectives=("distill", "supervised"),
        # Supervised students use the metric scale of the ground truth; distilled ones learn the teacher's
        # relative depth (si_lambda 0: the proxy labels have a fixed normalisation, see dae_jax/train/step.py).
        si_lambda=dict(distill=0.0, supervised=0.5),
        parity_frames=4,  # test frames predicted by both the exported PyTorch model and the JAX one
        picture_sequences=5,  # comparison.png shows the first 5 test sequences: one of each scene family
        # The demo fails (after writing its results) unless every trained model (each <student>/distill and
        # <student>/supervised row) has Abs Rel <= abs_rel_ratio x the no-input row's and δ<1.25 >= the no-input
        # row's + delta1_gain; each distilled student beats its <student>/distill_no_events row (lower Abs Rel and
        # higher δ<1.25); and each supervised student beats the distilled one of its kind on Abs Rel.
        margins=dict(check=True, abs_rel_ratio=0.75, delta1_gain=0.15),
    ))
    return c
