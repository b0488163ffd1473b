"""DepthAnyEvent (DAv2-vits on Tencode) with the released MVSEC test settings (input 350x266, softplus).

  python launch.py --config=configs/dav2_mvsec.py --workdir=/tmp/dav2 --mode=predict \
      --config.checkpoint=dav2_mvsec.pth --config.predict.input=DIR_OF_TENCODE_NPY
"""

from configs import common


def get_config():
    """The common defaults are exactly this model."""
    return common.get_config()
