"""Shared defaults of every config: student, teacher, data, objective, loss, optimiser, training, export.

Every other config starts from `get_config()` here and changes what differs; the code has no other defaults.
"""

from __future__ import annotations

import ml_collections

from dae_jax.eval.metrics import CLIP_DISTANCE, REG_FACTOR


def get_config() -> ml_collections.ConfigDict:
    """Defaults: a DepthAnyEvent DAv2-vits student with the released MVSEC test settings, distilled from DAv2-vitl."""
    c = ml_collections.ConfigDict()
    # The student, as the reference's `model` block; `official: True` selects official DAv2 semantics.
    c.model = ml_collections.ConfigDict(dict(
        model_type="DAv2", encoder="vits", activation="softplus", scale_factor=1.0, inv_prediction=True,
        input_size_width=350, input_size_height=266, input_channels=3, official=False,
    ))
    # Weights to start the student from: an official DAv2 .pth (the recurrent layers of DepthAnyEvent-R then
    # keep their fresh init), an exported .pth/.safetensors, or dae_jax params. Also what export/predict read.
    c.checkpoint = ""
    # What the student reads: 'events' (the event encoding) or 'rgb' (to train a frame model, e.g. a teacher).
    c.input = "events"
    # 'distill': labels from the frozen teacher on the aligned RGB frames; 'supervised': ground-truth depth.
    c.objective = "distill"
    c.teacher = ml_collections.ConfigDict(dict(
        model=dict(model_type="DAv2", encoder="vitl", official=True, input_size_width=518, input_size_height=518),
        checkpoint="",  # depth_anything_v2_vitl.pth, or dae_jax params of a teacher trained here
        # Stored proxy labels (a directory written by --mode=label): distillation reads them instead of running
        # the teacher in the step, and then needs no teacher weights.
        labels="",
    ))
    # --mode=label: the teacher (config.teacher) over splits of config.data.dataset_dir, its relative inverse
    # depth stored once (dae_jax/label.py). output "" -> <dataset_dir>/labels; batch_size is global.
    c.label = ml_collections.ConfigDict(dict(splits=("train",), output="", batch_size=8, chunk_size=64))
    # The input pipeline (dae_jax.data.pipeline.InputConfig); batch_size is GLOBAL (over all hosts/devices).
    c.data = ml_collections.ConfigDict(dict(
        dataset_dir="", split="train", batch_size=8, clip_length=1, clip_step=None, crop=(256, 320),
        random_crop=True, hflip=True, representation=dict(name="tencode"), shuffle=True, seed=0,
        num_epochs=None, worker_count=0, read_threads=2, drop_remainder=True,
    ))
    # Loss and label space (see dae_jax/train/step.py and the README for the reasoning).
    c.loss = ml_collections.ConfigDict(dict(
        label_space="logdepth", si_lambda=0.0, gradient_weight=0.5, gradient_scales=4, ssi_alpha=0.5,
        reg_factor=REG_FACTOR, clip_distance=CLIP_DISTANCE, disparity_loss="ssi",
        sky_as_far=False,  # supervised: ground truth 0 = sky (trained as far) instead of unknown (masked)
        rescale_ground_truth=False,  # supervised: scale each image so its farthest point is at clip_distance
        ignore_largest_fraction=0.0,  # per image, drop this share of the largest per-pixel losses (DAv2: 0.1)
        # logdepth: shift each prediction so its maximum is 1 before the loss, as the protocol's per-frame max
        # normalisation does before it scores (with si_lambda > 0 the level then counts).
        anchor_at_max=False,
        # The teacher's output: 'relative' inverse depth (DAv2; the labels' log depth is anchored at each image's
        # nearest point), 'metric' inverse depth in 1/m (a metric teacher): kept, or 'logdepth' (a teacher that
        # predicts the normalised log depth itself, the demo's stand-in): the label as it is.
        teacher_scale="relative",
    ))
    c.optim = ml_collections.ConfigDict(dict(
        lr=5e-5, encoder_lr=5e-6, weight_decay=0.01, b1=0.9, b2=0.999, warmup_steps=500, schedule="cosine",
        final_lr_fraction=0.0, grad_clip=1.0, freeze_encoder=False,
    ))
    c.train = ml_collections.ConfigDict(dict(
        num_steps=20_000, log_every=50, checkpoint_every=1000, keep_checkpoints=3, seed=0, dtype="float32",
        remat=False, unroll_time=True,  # unroll DepthAnyEvent-R's clip loop (faster on CPU; False: rolled scan)
        picture_every=1000,  # TensorBoard pictures of input / prediction / label (0: none)
    ))
    # Set to start the head's last bias at this value (models with a ReLU output trained from scratch).
    c.train.output_bias_init = ml_collections.config_dict.placeholder(float)
    # DepthAnyEvent-R's recurrent layers that no checkpoint holds: 'random' (flax's default initialisers) or
    # 'passthrough' (they start by passing the DAv2 features on: dae_jax.train.state.passthrough_recurrent).
    c.train.recurrent_init = "random"
    # Evaluation (--mode=eval, and every `every` steps during training when > 0; the best params by `metric`
    # are kept in <workdir>/best). dataset_dir "" means config.data.dataset_dir; pictures = frames per sequence
    # drawn as events | prediction | ground truth | error, and gif joins them per sequence.
    c.eval = ml_collections.ConfigDict(dict(
        every=0, dataset_dir="", split="test", crop=None, metric="_abs_rel_diff", higher_is_better=False,
        batch_size=8, pictures=0, gif=False,
    ))
    # --mode=export: where to write (default <workdir>/export/model.pth). The evaluation settings are those of the
    # weights (a training run's label space, a .pth's config['trainer']); these fill in what the weights do not
    # store (a bare .pth, older params files), for export, eval and predict alike.
    c.export = ml_collections.ConfigDict(dict(
        path="", plain=False, use_logdepth=True, use_scaleshift=False, reg_factor=REG_FACTOR,
        clip_distance=CLIP_DISTANCE,
    ))
    # --mode=predict: a recording (.aedat4, .raw, .h5, .npz) or a folder of .npy (H, W, C) / .png inputs; outputs
    # go to <workdir>/predictions. A recording is cut into windows (dae_jax.recordings.windows): 'duration'
    # (duration_ms long, one every stride_ms; 0: back to back), 'count' (count events each) or 'frames' (the
    # duration_ms before each of its frames); depth of a log-depth model in metres by config.export's flags.
    c.predict = ml_collections.ConfigDict(dict(
        input="", near_m=2.0, far_m=CLIP_DISTANCE, window="duration", duration_ms=50.0, stride_ms=0.0, count=0,
        batch_size=8, video="mp4", sensor_size=ml_collections.config_dict.placeholder(tuple),
    ))
    return c
