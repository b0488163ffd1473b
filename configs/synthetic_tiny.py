"""A tiny DAv2 student trained supervised on the synthetic world: the smallest run that exercises everything.

  python -m tfds_builders synthetic_events --config small_tencode --data_dir /tmp/tfds
  python launch.py --config=configs/synthetic_tiny.py --workdir=/tmp/tiny --mode=train \
      --config.data.dataset_dir=/tmp/tfds/synthetic_events/small_tencode/1.0.0
"""

from configs import common


def get_config():
    """Tiny encoder, 56x70 crops, a few hundred steps."""
    c = common.get_config()
    c.model.update(encoder="tiny", input_size_width=70, input_size_height=56)
    c.objective = "supervised"
    c.data.update(batch_size=8, crop=(56, 70))
    c.optim.update(lr=1e-3, encoder_lr=1e-3, warmup_steps=10)
    c.train.update(num_steps=200, log_every=10, checkpoint_every=50)
    return c
