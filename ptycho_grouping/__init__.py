"""Sample-then-group coordinate grouping for ptychography training data.

>>> import numpy as np
>>> from ptycho_grouping import GroupingRequest, get_strategy
>>> xy = np.random.default_rng(0).uniform(0, 100, size=(1000, 2))
>>> groups = get_strategy().group(xy, GroupingRequest(n_groups=64, group_size=4, neighbors=7, rng=0))
>>> groups.shape
(64, 4)
"""
from .errors import InvalidParameterError, InvalidParameterTypeError, ParameterWarning
from .hookspecs import hookimpl
from .neighbors import NeighborIndex
from .registry import get_strategy, list_strategies
from .strategy import GroupingRequest, GroupingStrategy, Resolution
from .validation import check_coords as validate_coords

__all__ = [
    "GroupingRequest",
    "GroupingStrategy",
    "InvalidParameterError",
    "InvalidParameterTypeError",
    "NeighborIndex",
    "ParameterWarning",
    "Resolution",
    "get_strategy",
    "hookimpl",
    "list_strategies",
    "validate_coords",
]
__version__ = "0.2.0"
