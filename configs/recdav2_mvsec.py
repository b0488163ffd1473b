"""DepthAnyEvent-R (RecDAv2-vits, ConvLSTM) with the released MVSEC test settings (input 350x266, softplus).

  python launch.py --config=configs/recdav2_mvsec.py --workdir=/tmp/recdav2 --mode=export \
      --config.checkpoint=/tmp/recdav2/params.msgpack
"""

from configs import common


def get_config():
    """RecDAv2 on top of the common defaults."""
    c = common.get_config()
    c.model.model_type = "RecDAv2"
    c.model.recurrent_block_type = "convlstm"
    return c
