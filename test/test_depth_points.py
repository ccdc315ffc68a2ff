"""Labelled points from registered depth: geometry, invalid depth, stride, encodings, PointCloud2 bytes."""

from __future__ import annotations

import numpy as np
import pytest

from bialign_ros.camera_geometry import CameraIntrinsics
from bialign_ros.depth_points import POINT_FIELDS, POINT_STEP, DepthProjector, pack_cloud
from bialign_ros.stamp_buffer import RecentByStamp

HEIGHT, WIDTH = 48, 64
INTRINSICS = CameraIntrinsics(fx=50.0, fy=55.0, cx=31.5, cy=23.0)
# A tilted plane n . p = d in the optical frame, 2 to 4 m in front of the camera.
NORMAL, OFFSET = np.array([0.2, -0.4, 1.0]), 3.0
# sensor_msgs/PointField datatypes: 2 UINT8, 7 FLOAT32.
FIELD_FORMATS = {2: "u1", 7: "<f4"}


def plane_depth() -> np.ndarray:
    """Metres along the optical axis at which each pixel's ray meets the plane."""
    u = (np.arange(WIDTH) - INTRINSICS.cx) / INTRINSICS.fx
    v = (np.arange(HEIGHT) - INTRINSICS.cy) / INTRINSICS.fy
    return OFFSET / (NORMAL[0] * u[None, :] + NORMAL[1] * v[:, None] + NORMAL[2])


def frame_images() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    return ((rows * 7 + cols) % 19).astype(np.uint8), ((rows * 3 + cols * 5) % 256).astype(np.uint8)


def pixel_of(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column and row each point was seen at, from its coordinates."""
    u = points["x"] / points["z"] * INTRINSICS.fx + INTRINSICS.cx
    v = points["y"] / points["z"] * INTRINSICS.fy + INTRINSICS.cy
    return np.round(u).astype(int), np.round(v).astype(int)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_points_of_a_plane_lie_on_it(encoding: str) -> None:
    metres = plane_depth()
    assert metres.min() > 2.0 and metres.max() < 4.5
    depth = metres.astype(np.float32) if encoding == "32FC1" else np.round(metres * 1000).astype(np.uint16)
    labels, confidence = frame_images()
    points = DepthProjector(INTRINSICS).points(depth, encoding, labels, confidence)
    assert points.size == HEIGHT * WIDTH
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
    distance = np.abs(xyz @ NORMAL - OFFSET) / np.linalg.norm(NORMAL)
    assert distance.max() < 1e-3
    u, v = pixel_of(points)
    assert np.array_equal(v * WIDTH + u, np.arange(HEIGHT * WIDTH))
    assert np.array_equal(points["label"], labels[v, u])
    assert np.array_equal(points["confidence"], confidence[v, u])


def test_invalid_depth_is_skipped() -> None:
    depth = plane_depth().astype(np.float32)
    labels, confidence = frame_images()
    invalid = np.zeros_like(depth, dtype=bool)
    for value, (r, c) in zip([0.0, np.nan, np.inf, -np.inf, -1.0], [(0, 0), (5, 9), (20, 30), (47, 63), (10, 0)]):
        depth[r, c] = value
        invalid[r, c] = True
    points = DepthProjector(INTRINSICS).points(depth, "32FC1", labels, confidence)
    assert points.size == HEIGHT * WIDTH - invalid.sum()
    assert np.isfinite(points["x"]).all() and (points["z"] > 0).all()
    u, v = pixel_of(points)
    assert not invalid[v, u].any()
    assert np.array_equal(points["label"], labels[v, u])
    assert np.array_equal(points["confidence"], confidence[v, u])
    millimetres = np.round(plane_depth() * 1000).astype(np.uint16)
    millimetres[invalid] = 0
    assert DepthProjector(INTRINSICS).points(millimetres, "16UC1", labels, confidence).size == points.size
    nothing = DepthProjector(INTRINSICS).points(np.zeros_like(millimetres), "16UC1", labels, confidence)
    assert nothing.size == 0 and pack_cloud(nothing).row_step == 0


def test_stride_keeps_every_nth_pixel_in_rows_and_columns() -> None:
    labels, confidence = frame_images()
    projector = DepthProjector(INTRINSICS)
    full = projector.points(plane_depth().astype(np.float32), "32FC1", labels, confidence)
    thin = projector.points(plane_depth().astype(np.float32), "32FC1", labels, confidence, stride=3)
    assert thin.size == 16 * 22
    u, v = pixel_of(thin)
    assert (u % 3 == 0).all() and (v % 3 == 0).all()
    assert np.array_equal(thin, full.reshape(HEIGHT, WIDTH)[::3, ::3].reshape(-1))
    with pytest.raises(ValueError, match="stride"):
        projector.points(plane_depth().astype(np.float32), "32FC1", labels, confidence, stride=0)


def test_packed_bytes_decode_to_the_same_points() -> None:
    labels, confidence = frame_images()
    points = DepthProjector(INTRINSICS).points(plane_depth().astype(np.float32), "32FC1", labels, confidence)
    cloud = pack_cloud(points)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, points.size, 16, 16 * points.size)
    assert cloud.is_dense and not cloud.is_bigendian and POINT_STEP == 16
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("label", 12, 2, 1), ("confidence", 13, 2, 1)
    ]
    data = bytes(cloud.data)
    assert len(data) == cloud.row_step
    decoded = np.frombuffer(data, dtype=np.dtype({
        "names": [f.name for f in POINT_FIELDS],
        "formats": [FIELD_FORMATS[f.datatype] for f in POINT_FIELDS],
        "offsets": [f.offset for f in POINT_FIELDS],
        "itemsize": cloud.point_step,
    }))
    for name in ("x", "y", "z", "label", "confidence"):
        assert np.array_equal(decoded[name], points[name])
    assert not np.frombuffer(data, np.uint8).reshape(-1, 16)[:, 14:].any()


def test_depth_of_another_size_or_encoding_is_named() -> None:
    labels, confidence = frame_images()
    projector = DepthProjector(INTRINSICS)
    depth = plane_depth().astype(np.float32)
    with pytest.raises(ValueError, match=r"depth image is 32x24 but the labels are 64x48"):
        projector.points(depth[::2, ::2], "32FC1", labels, confidence)
    with pytest.raises(ValueError, match="confidence are 63x48"):
        projector.points(depth, "32FC1", labels, confidence[:, 1:])
    with pytest.raises(ValueError, match="depth encoding 'mono16' is not supported; use one of 16UC1, 32FC1"):
        projector.points(depth.astype(np.uint16), "mono16", labels, confidence)
    with pytest.raises(ValueError, match="encoding 16UC1 must be a 2-D uint16 array, got 2-D float32"):
        projector.points(depth, "16UC1", labels, confidence)
    with pytest.raises(ValueError, match="labels must be uint8, got int64"):
        projector.points(depth, "32FC1", labels.astype(np.int64), confidence)


def test_depth_is_matched_to_the_frame_by_nearest_stamp_within_tolerance() -> None:
    buffer: RecentByStamp[str] = RecentByStamp(tolerance_ns=10_000_000, capacity=3)
    assert buffer.nearest(0) is None
    for stamp, name in [(100_000_000, "a"), (133_000_000, "b"), (166_000_000, "c")]:
        buffer.add(stamp, name)
    assert buffer.nearest(131_000_000) == "b"
    assert buffer.nearest(175_000_000) == "c"
    assert buffer.nearest(150_000_000) is None
    buffer.add(200_000_000, "d")
    assert buffer.nearest(101_000_000) is None  # the oldest went when the buffer was full
    with pytest.raises(ValueError, match="tolerance"):
        RecentByStamp(tolerance_ns=-1)


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_large_frames_in_bands_give_every_valid_pixel_once_in_row_major_order(workers: int, stride: int) -> None:
    """A frame split into row bands of 10 rows: bands with no valid pixel, every pixel valid, some valid."""
    height, width = 301, 400
    intrinsics = CameraIntrinsics(fx=300.0, fy=310.0, cx=199.5, cy=150.0)
    rng = np.random.default_rng(stride)
    millimetres = rng.integers(500, 20000, (height, width)).astype(np.uint16)
    millimetres[rng.random((height, width)) < 0.3] = 0
    millimetres[:25] = 0
    millimetres[60:100] = 1234
    labels = rng.integers(0, 19, (height, width)).astype(np.uint8)
    confidence = rng.integers(0, 256, (height, width)).astype(np.uint8)
    projector = DepthProjector(intrinsics, workers, band_pixels=4000)
    points = projector.points(millimetres, "16UC1", labels, confidence, stride)
    v, u = np.nonzero(millimetres[::stride, ::stride])
    v, u = v * stride, u * stride
    z = millimetres[v, u] / 1000.0
    assert points.size == v.size
    np.testing.assert_allclose(points["z"], z, rtol=1e-6)
    np.testing.assert_allclose(points["x"], (u - intrinsics.cx) / intrinsics.fx * z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(points["y"], (v - intrinsics.cy) / intrinsics.fy * z, rtol=1e-5, atol=1e-6)
    assert np.array_equal(points["label"], labels[v, u])
    assert np.array_equal(points["confidence"], confidence[v, u])
    assert not pack_cloud(points).data.reshape(-1, POINT_STEP)[:, 14:].any()  # padding bytes are zero
