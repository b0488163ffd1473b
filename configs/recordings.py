"""DepthAnyEvent distilled on your own recordings (tfds_builders/event_recordings): events + frames, no depth.

  python -m tfds_builders event_recordings --config tencode --data_dir DATA --manual_dir MY_RECORDINGS
  python launch.py --config=configs/recordings.py --workdir=runs/mine --mode=label \
      --config.data.dataset_dir=DATA/event_recordings/tencode/1.0.0 \
      --config.teacher.checkpoint=depth_anything_v2_vitl.pth --config.label.output=runs/mine/labels
  python launch.py --config=configs/recordings.py --workdir=runs/mine --mode=train \
      --config.data.dataset_dir=DATA/event_recordings/tencode/1.0.0 --config.teacher.labels=runs/mine/labels \
      --config.checkpoint=depth_anything_v2_vits.pth
  python launch.py --config=configs/recordings.py --workdir=runs/mine --mode=predict \
      --config.predict.input=another_recording.aedat4

Without the label stage (`teacher.labels` empty) the teacher runs in every training step instead. The students
start from DAv2 weights (`checkpoint`), as DepthAnyEvent is DAv2 fine-tuned on events.
"""

from configs import common


def get_config():
    """The paper's student and teacher; crops that fit every sensor from 320x240 up; no evaluation (no depth)."""
    c = common.get_config()
    c.data.update(crop=(224, 308), dataset_dir="")
    c.train.update(num_steps=20_000, checkpoint_every=1000)
    c.eval.every = 0  # the recordings have no ground truth to score against
    return c
