"""A tiny DAv2 student trained supervised on the synthetic world: the smallest run that exercises everything
(the README's first command).

  python -m tfds_builders synthetic_events --config small_tencode --data_dir /tmp/tfds
  python launch.py --config=configs/synthetic_tiny.py --workdir=/tmp/tiny --mode=train \
      --config.data.dataset_dir=/tmp/tfds/synthetic_events/small_tencode/1.0.0
"""

from configs import common


def get_config():
    """Tiny encoder on 252x336 crops seen at 70x98 (as whole frames are at evaluation), a few hundred steps."""
    c = common.get_config()
    c.model.update(encoder="tiny", input_size_width=98, input_size_height=70)
    c.objective = "supervised"
    c.data.update(batch_size=8, crop=(252, 336))
    c.loss.si_lambda = 0.5  # ground truth has a metric scale
    c.optim.update(lr=3e-4, encoder_lr=3e-4, warmup_steps=20)
    c.train.update(num_steps=300, log_every=20, checkpoint_every=100)
    return c
