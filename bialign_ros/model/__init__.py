"""BiAlignNet in pure PyTorch: DFNet backbones, pyramid pooling, spatial path, flow alignment, heads.

Module names and structure reproduce the authors' state-dict keys, so their released weights
load strictly once their ``module.`` prefix is removed.
"""

from bialign_ros.model.align import GATES
from bialign_ros.model.bialign import ARCHITECTURES, BiAlignNet
from bialign_ros.model.build import build_model, count_parameters, load_backbone_state_dict

__all__ = [
    "ARCHITECTURES",
    "GATES",
    "BiAlignNet",
    "build_model",
    "count_parameters",
    "load_backbone_state_dict",
]
