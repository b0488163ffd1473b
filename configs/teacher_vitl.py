"""The frame teacher: official Depth Anything V2 vitl (relative inverse depth, official preprocessing semantics).

  python launch.py --config=configs/teacher_vitl.py --workdir=/tmp/teacher --mode=predict \
      --config.checkpoint=depth_anything_v2_vitl.pth --config.predict.input=DIR_OF_RGB_PNG
"""

from configs import common


def get_config():
    """Official DAv2-vitl at its native 518 input size."""
    c = common.get_config()
    c.model = dict(model_type="DAv2", encoder="vitl", official=True, input_size_width=518, input_size_height=518)
    c.export.plain = True
    return c
