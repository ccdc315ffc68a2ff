"""Flat-ground occupancy grid: a synthetic camera looks at a road with a car standing on it.

The label image is rendered here from first principles (each pixel's ray against the ground plane
and the car's box), with the camera's axes written from the conventions the module documents, so
the grid is checked against the layout, not against the module's own projection.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bialign_ros.camera_geometry import CameraIntrinsics, CameraPose
from bialign_ros.classes import CITYSCAPES_NAMES, DEFAULT_FREE_SPACE_CLASSES, DEFAULT_OBSTACLE_CLASSES, class_lookup
from bialign_ros.ground_grid import (
    FREE,
    OCCUPIED,
    UNKNOWN,
    GridSpec,
    PixelToCellMap,
    grid_from_labels,
    ground_points,
)

HEIGHT, WIDTH = 600, 1200
INTRINSICS = CameraIntrinsics(fx=1000.0, fy=1000.0, cx=599.5, cy=299.5)
GRID = GridSpec(length=20.0, width=10.0, resolution=0.1)
ROAD_HALF_WIDTH = 2.5
# The car's front stands inside a cell, so road in front of it is seen in the cell it stands in.
CAR_MIN, CAR_MAX = np.array([9.05, -0.5, 0.0]), np.array([11.05, 1.3, 0.6])
ROAD, SIDEWALK, SKY, CAR = (CITYSCAPES_NAMES.index(n) for n in ("road", "sidewalk", "sky", "car"))
FREE_LUT = class_lookup(DEFAULT_FREE_SPACE_CLASSES, CITYSCAPES_NAMES)
OBSTACLE_LUT = class_lookup(DEFAULT_OBSTACLE_CLASSES, CITYSCAPES_NAMES)
POSES = {
    "ahead": CameraPose(height=1.6, pitch=0.12),
    "turned": CameraPose(height=1.4, pitch=0.08, x=1.0, y=0.5, yaw=0.2),
}


def camera_axes(pose: CameraPose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right, down and forward axes in the ground frame, as the docstring of CameraPose words them."""
    cp, sp, cy, sy = np.cos(pose.pitch), np.sin(pose.pitch), np.cos(pose.yaw), np.sin(pose.yaw)
    forward = np.array([cp * cy, cp * sy, -sp])  # pitch > 0 looks down, yaw > 0 turns left
    left = np.array([-sy, cy, 0.0])
    up = np.cross(forward, left)
    cr, sr = np.cos(pose.roll), np.sin(pose.roll)
    left, up = cr * left + sr * up, -sr * left + cr * up  # roll > 0: right side down
    return -left, -up, forward


def pixel_rays(pose: CameraPose) -> np.ndarray:
    """(H, W, 3) ground-frame rays through the pixel centres."""
    right, down, forward = camera_axes(pose)
    u = (np.arange(WIDTH) - INTRINSICS.cx) / INTRINSICS.fx
    v = (np.arange(HEIGHT) - INTRINSICS.cy) / INTRINSICS.fy
    return forward + u[None, :, None] * right + v[:, None, None] * down


def ground_hit(pose: CameraPose, rays: np.ndarray) -> np.ndarray:
    """(…, 2) x, y where rays meet the ground, NaN where they do not."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rays[..., 2] < 0, -pose.height / rays[..., 2], np.nan)
    return pose.position()[:2] + t[..., None] * rays[..., :2]


def box_entry(origin: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Ray parameter where each ray enters the car's box, inf where it misses (slab method)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (CAR_MIN - origin) / rays
        t2 = (CAR_MAX - origin) / rays
    near = np.nanmax(np.minimum(t1, t2), axis=-1)
    far = np.nanmin(np.maximum(t1, t2), axis=-1)
    return np.where((near <= far) & (far > 0), near, np.inf)


def render_labels(pose: CameraPose) -> np.ndarray:
    rays = pixel_rays(pose)
    xy = ground_hit(pose, rays)
    with np.errstate(invalid="ignore"):
        ground_t = np.where(rays[..., 2] < 0, -pose.height / rays[..., 2], np.inf)
    labels = np.full((HEIGHT, WIDTH), SKY, dtype=np.uint8)
    on_ground = np.isfinite(ground_t)
    labels[on_ground] = np.where(np.abs(xy[on_ground][:, 1]) < ROAD_HALF_WIDTH, ROAD, SIDEWALK)
    labels[box_entry(pose.position(), rays) < ground_t] = CAR
    return labels


def layout(pose: CameraPose) -> dict[str, np.ndarray]:
    """Masks over the grid's cells (by their centres): road, car footprint, shadow, in view, car front edge."""
    xs, ys = GRID.cell_centres()
    ground = np.stack([xs, ys, np.zeros_like(xs)], axis=-1)
    to_cell = ground - pose.position()
    shadow = box_entry(pose.position(), to_cell) < 1.0
    right, down, forward = camera_axes(pose)
    depth = to_cell @ forward
    u = INTRINSICS.cx + INTRINSICS.fx * (to_cell @ right) / depth
    v = INTRINSICS.cy + INTRINSICS.fy * (to_cell @ down) / depth
    in_view = (depth > 0) & (u >= 0) & (u <= WIDTH - 1) & (v >= 0) & (v <= HEIGHT - 1)
    footprint = (xs >= CAR_MIN[0]) & (xs <= CAR_MAX[0]) & (ys >= CAR_MIN[1]) & (ys <= CAR_MAX[1])
    front = (np.abs(xs - CAR_MIN[0]) < GRID.resolution / 2) & (ys >= CAR_MIN[1]) & (ys <= CAR_MAX[1])
    road = np.abs(ys) < ROAD_HALF_WIDTH
    return {
        "road": road, "footprint": footprint, "shadow": shadow, "in_view": in_view, "front": front, "xs": xs, "ys": ys
    }


def grow(mask: np.ndarray) -> np.ndarray:
    """The mask and every cell next to it (one cell of tolerance)."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def shrink(mask: np.ndarray) -> np.ndarray:
    """The mask's cells whose every neighbour is in it too."""
    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=0).astype(bool)


def occupancy(pose: CameraPose, labels: np.ndarray) -> np.ndarray:
    cell_map = PixelToCellMap.for_camera(INTRINSICS, pose, GRID, labels.shape)
    return grid_from_labels(labels, cell_map, FREE_LUT, OBSTACLE_LUT)


@pytest.mark.parametrize("pose_name", POSES)
def test_grid_equals_the_layout_within_one_cell(pose_name: str) -> None:
    pose = POSES[pose_name]
    labels = render_labels(pose)
    assert (labels == CAR).sum() > 1000 and (labels == ROAD).sum() > 10000
    grid = occupancy(pose, labels)
    assert grid.shape == (100, 200) and grid.dtype == np.int8
    assert set(np.unique(grid)) <= {FREE, OCCUPIED, UNKNOWN}
    lay = layout(pose)
    seen_road = lay["road"] & lay["in_view"] & ~lay["shadow"] & ~lay["footprint"]
    free, occupied = grid == FREE, grid == OCCUPIED
    # Every free cell is road the camera sees, give or take a cell at the boundaries.
    assert not (free & ~grow(seen_road)).any()
    # Where pixel rows are denser than cells, every road cell seen clear of the boundaries is free.
    near = lay["xs"] < 8.0
    missed = shrink(seen_road) & near & ~free
    assert not missed.any(), f"{missed.sum()} visible road cells not free"
    # Occupied cells stand where the car meets the ground in view: its front edge, or along the
    # boundary of its shadow where the rays graze its sides.
    shadow_edge = grow(lay["shadow"]) & ~shrink(lay["shadow"])
    assert not (occupied & ~grow(lay["front"]) & ~shadow_edge).any()
    # The whole front edge is occupied although road pixels in front of it see the same cells.
    edge_rows = (lay["ys"][:, 0] > CAR_MIN[1] + 0.1) & (lay["ys"][:, 0] < CAR_MAX[1] - 0.1)
    assert (occupied & grow(lay["front"])).any(axis=1)[edge_rows].all()
    assert (grid[lay["front"] & edge_rows[:, None]] == OCCUPIED).mean() > 0.9


def behind_car(pose: CameraPose, labels: np.ndarray) -> np.ndarray:
    """Cells whose centre is seen in an image column above a car pixel of that column."""
    xs, ys = GRID.cell_centres()
    to_cell = np.stack([xs, ys, np.zeros_like(xs)], axis=-1) - pose.position()
    right, down, forward = camera_axes(pose)
    depth = to_cell @ forward
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.round(INTRINSICS.cx + INTRINSICS.fx * (to_cell @ right) / depth)
        v = INTRINSICS.cy + INTRINSICS.fy * (to_cell @ down) / depth
    lowest_car = np.full(WIDTH, -1.0)
    car_columns = (labels == CAR).any(axis=0)
    lowest_car[car_columns] = HEIGHT - 1 - (labels[::-1] == CAR).argmax(axis=0)[car_columns]
    in_image = (depth > 0) & (u >= 0) & (u <= WIDTH - 1)
    column = np.clip(np.nan_to_num(u), 0, WIDTH - 1).astype(int)
    return in_image & (lowest_car[column] >= 0) & (v < lowest_car[column])


@pytest.mark.parametrize("pose_name", POSES)
def test_cells_behind_the_car_are_unknown(pose_name: str) -> None:
    pose = POSES[pose_name]
    labels = render_labels(pose)
    lay = layout(pose)
    behind = shrink(behind_car(pose, labels)) & lay["in_view"]
    # Road over the car's roof is seen behind it; the walk must not use it.
    seen_over_roof = behind & lay["road"] & ~lay["shadow"]
    assert seen_over_roof.sum() > 200
    assert behind.sum() > 1000
    assert (occupancy(pose, labels)[behind] == UNKNOWN).all()


def test_nothing_above_the_horizon_is_projected() -> None:
    pose = POSES["ahead"]
    horizon_row = INTRINSICS.cy - INTRINSICS.fy * np.tan(pose.pitch)  # pitch > 0 lifts the horizon
    x, y, depth = ground_points(INTRINSICS, pose, HEIGHT, WIDTH)
    rows = np.arange(HEIGHT)
    assert np.isnan(depth[rows <= horizon_row - 0.5]).all()
    assert np.isfinite(depth[rows >= horizon_row + 0.5]).all()
    labels = render_labels(pose)
    grid = occupancy(pose, labels)
    sky = labels == SKY
    assert sky.sum() > 50000
    for label in (ROAD, CAR):
        relabelled = np.where(sky, np.uint8(label), labels)
        assert np.array_equal(occupancy(pose, relabelled), grid)


@pytest.mark.parametrize("pose_name", POSES)
def test_every_pixel_read_sees_the_cell_it_is_given(pose_name: str) -> None:
    pose = POSES[pose_name]
    cell_map = PixelToCellMap.for_camera(INTRINSICS, pose, GRID, (HEIGHT, WIDTH))
    every_hit = ground_hit(pose, pixel_rays(pose)).reshape(-1, 2)
    # The ground beyond the grid is in view (the horizon is in the image).
    assert (every_hit[:, 0] > GRID.origin_x + GRID.length).any()
    hit = every_hit[cell_map.samples]
    cells = cell_map.sample_cells
    has_cell = cells != cell_map.sink
    assert has_cell.sum() > 10000
    row, col = np.divmod(cells[has_cell], GRID.cells_x)
    eps = 1e-6
    x, y = hit[has_cell][:, 0], hit[has_cell][:, 1]
    assert (x >= GRID.origin_x + col * GRID.resolution - eps).all()
    assert (x <= GRID.origin_x + (col + 1) * GRID.resolution + eps).all()
    assert (y >= GRID.origin_y + row * GRID.resolution - eps).all()
    assert (y <= GRID.origin_y + (row + 1) * GRID.resolution + eps).all()


def test_all_road_image_frees_only_cells_in_view() -> None:
    pose = POSES["ahead"]
    grid = occupancy(pose, np.full((HEIGHT, WIDTH), ROAD, dtype=np.uint8))
    lay = layout(pose)
    assert not ((grid == FREE) & ~grow(lay["in_view"])).any()
    assert (grid[shrink(lay["in_view"]) & (lay["xs"] < 8.0)] == FREE).all()
    assert not (grid == OCCUPIED).any()


def test_map_is_rebuilt_only_when_camera_pose_grid_or_size_change() -> None:
    pose = POSES["ahead"]
    first = PixelToCellMap.for_camera(INTRINSICS, pose, GRID, (HEIGHT, WIDTH))
    same = PixelToCellMap.for_camera(CameraIntrinsics(1000.0, 1000.0, 599.5, 299.5), CameraPose(1.6, 0.12), GRID,
                                     (HEIGHT, WIDTH), previous=first)
    assert same is first
    for changed in (
        dict(intrinsics=CameraIntrinsics(900.0, 1000.0, 599.5, 299.5)),
        dict(pose=CameraPose(1.6, 0.13)),
        dict(grid=GridSpec(length=20.0, width=10.0, resolution=0.2)),
        dict(image_size=(HEIGHT, WIDTH - 2)),
    ):
        args = dict(intrinsics=INTRINSICS, pose=pose, grid=GRID, image_size=(HEIGHT, WIDTH)) | changed
        assert PixelToCellMap.for_camera(**args, previous=first) is not first


def test_grid_follows_occupancy_grid_indexing() -> None:
    grid = GridSpec(length=4.0, width=2.0, resolution=0.5)
    assert (grid.cells_x, grid.cells_y, grid.shape, grid.origin_y) == (8, 4, (4, 8), -1.0)
    # Row-major from cell (0, 0) at the origin corner: column along x, row along y.
    index = grid.cell_index(np.array([0.1, 1.2, 3.9, 4.0, -0.1, 0.1]), np.array([-0.9, 0.6, 0.9, 0.0, 0.0, 1.0]))
    assert index.tolist() == [0, 3 * 8 + 2, 3 * 8 + 7, -1, -1, -1]


def test_bad_camera_and_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="focal length fx"):
        CameraIntrinsics(0.0, 1000.0, 10.0, 10.0)
    with pytest.raises(ValueError, match="focal length fy"):
        CameraIntrinsics.from_k([1000.0, 0, 10, 0, -5.0, 10, 0, 0, 1])
    with pytest.raises(ValueError, match="9 values"):
        CameraIntrinsics.from_k([1.0, 2.0])
    for height in (0.0, -0.5):
        with pytest.raises(ValueError, match="below the ground"):
            CameraPose(height=height)
    with pytest.raises(ValueError, match="resolution"):
        GridSpec(resolution=0.0)
    with pytest.raises(ValueError, match="unknown class name.*'lane'"):
        class_lookup(["road", "lane"], CITYSCAPES_NAMES)
    cell_map = PixelToCellMap.for_camera(INTRINSICS, POSES["ahead"], GRID, (HEIGHT, WIDTH))
    with pytest.raises(ValueError, match="do not match"):
        grid_from_labels(np.zeros((HEIGHT, WIDTH + 1), np.uint8), cell_map, FREE_LUT, OBSTACLE_LUT)


def test_class_names_are_the_models_own() -> None:
    names = ("ground", "thing", "sky")
    assert class_lookup(["thing"], names).nonzero()[0].tolist() == [1]
    assert set(DEFAULT_OBSTACLE_CLASSES) <= set(CITYSCAPES_NAMES)
    assert not set(DEFAULT_OBSTACLE_CLASSES) & {"road", "sidewalk", "terrain", "sky"}
