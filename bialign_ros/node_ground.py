"""ROS messages of the ground outputs: ``nav_msgs/OccupancyGrid`` and ``sensor_msgs/PointCloud2``.

The arrays come from :mod:`bialign_ros.ground_outputs`; this module only fills the grid message and
serialises the point cloud.
"""

from __future__ import annotations

import array as stdlib_array
from typing import Any

import numpy as np
from nav_msgs.msg import OccupancyGrid

from bialign_ros.codec.cdr import serialize_point_cloud
from bialign_ros.depth_points import PackedCloud
from bialign_ros.ground_grid import GridSpec


def occupancy_grid_msg(grid: np.ndarray, spec: GridSpec, stamp: Any, frame_id: str) -> OccupancyGrid:
    """The grid (int8 ``spec.shape``) as an OccupancyGrid in ``frame_id`` stamped like its camera frame."""
    msg = OccupancyGrid()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    info = msg.info
    info.map_load_time = stamp
    info.resolution = float(spec.resolution)
    info.width, info.height = spec.cells_x, spec.cells_y
    info.origin.position.x, info.origin.position.y = float(spec.origin_x), float(spec.origin_y)
    info.origin.orientation.w = 1.0
    # As bialign_ros.codec.raw.store_bytes does for uint8 data: an array.array extended in place is one copy;
    # an ndarray goes through the setter element by element (27 ms for a 400 x 200 grid).
    msg.data = stdlib_array.array("b")
    msg.data.frombytes(np.ascontiguousarray(grid, dtype=np.int8).tobytes())
    return msg


def point_cloud_cdr(cloud: PackedCloud, header: Any) -> np.ndarray:
    """The packed labelled points as the CDR of a PointCloud2 with the camera frame's ``header``, for
    :func:`~bialign_ros.raw_publish.publish_serialized`: one copy of the points (8 MB for 1024x2048 at
    stride 2), where filling a PointCloud2 and publishing it copies them three times."""
    return serialize_point_cloud(header, cloud.height, cloud.width, cloud.fields, cloud.is_bigendian,
                                 cloud.point_step, cloud.row_step, cloud.data, cloud.is_dense)
