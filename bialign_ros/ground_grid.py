"""A bird's-eye occupancy grid of flat ground from a label image (pure Python, no ROS).

Every pixel whose ray meets the ground (the plane z = 0 of the ground frame, see
:mod:`bialign_ros.camera_geometry`) inside the grid gets the grid cell it meets the ground in; the
map is computed once per camera (:class:`PixelToCellMap`, with a cache key) and reused for every
frame. Each image column is then walked from the bottom up: pixels of a free-space class mark
their cells free, the first pixel of an obstacle class marks the cell where it meets the ground
occupied (an obstacle's lowest visible pixel is taken to stand on the ground), and nothing above
that pixel in the column is used, so the ground behind an obstacle stays unknown. A cell seen both
free and occupied is occupied. Pixels whose ray never meets the ground (at or above the horizon),
or meets it outside the grid, are never projected. The walk reads one pixel per cell and column,
in columns a cell's width apart at the far edge of the grid (see :class:`PixelToCellMap`): about
a twentieth of a 1024x2048 image, so a frame costs a few milliseconds.

The grid follows ``nav_msgs/OccupancyGrid``: an array of (cells along y, cells along x), i.e.
``info.height`` rows of ``info.width`` cells, row-major from cell (0, 0) whose outer corner is at
``origin`` in the ground frame; column index grows with x, row index with y; cell (row, col)
covers ``origin_x + col * resolution <= x < origin_x + (col + 1) * resolution`` and likewise in y.
Values are int8: 0 free, 100 occupied, -1 unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bialign_ros.camera_geometry import CameraIntrinsics, CameraPose

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
"""Cell values of ``nav_msgs/OccupancyGrid``."""



@dataclass(frozen=True)
class GridSpec:
    """Size, resolution and placement of the grid in the ground frame (metres).

    ``length`` runs along x, ``width`` along y. ``origin_x``, ``origin_y`` are the outer corner of
    cell (0, 0) (``OccupancyGrid.info.origin``, orientation identity, z = 0); by default the grid
    starts at the ground frame's origin and is centred on its x axis (``origin_y = -width / 2``).
    """

    length: float = 40.0
    width: float = 20.0
    resolution: float = 0.1
    origin_x: float = 0.0
    origin_y: float | None = None

    def __post_init__(self) -> None:
        for name in ("length", "width", "resolution"):
            if not getattr(self, name) > 0:
                raise ValueError(f"grid {name} must be > 0 m, got {getattr(self, name)}")
        if self.origin_y is None:
            object.__setattr__(self, "origin_y", -self.width / 2)
        if self.cells_x < 1 or self.cells_y < 1:
            raise ValueError(f"grid of {self.length} x {self.width} m holds no cell of {self.resolution} m")

    @property
    def cells_x(self) -> int:
        """Cells along x: ``OccupancyGrid.info.width``."""
        return int(round(self.length / self.resolution))

    @property
    def cells_y(self) -> int:
        """Cells along y: ``OccupancyGrid.info.height``."""
        return int(round(self.width / self.resolution))

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the grid array: (cells along y, cells along x)."""
        return self.cells_y, self.cells_x

    def cell_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Row-major cell index (``row * cells_x + col``) of ground points, -1 outside the grid."""
        col = np.floor((np.asarray(x, dtype=np.float64) - self.origin_x) / self.resolution)
        row = np.floor((np.asarray(y, dtype=np.float64) - self.origin_y) / self.resolution)
        inside = (col >= 0) & (col < self.cells_x) & (row >= 0) & (row < self.cells_y)
        return np.where(inside, row * self.cells_x + col, -1).astype(np.int32)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y of every cell's centre, each of :attr:`shape`."""
        xs = self.origin_x + (np.arange(self.cells_x) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(self.cells_y) + 0.5) * self.resolution
        return np.meshgrid(xs, ys)


def ground_points(
    intrinsics: CameraIntrinsics, pose: CameraPose, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel's ray meets the ground: x, y (metres, ground frame) and the depth there.

    Arrays of shape (height, width), float64. Depth is the point's optical-frame z in metres. A ray
    meets the ground when it points below the horizon; all three are NaN elsewhere.
    """
    ray_x, ray_y = (r.astype(np.float64) for r in intrinsics.pixel_rays(height, width))
    r = pose.rotation()
    # Ground-frame ray of pixel (u, v) at unit depth: r[:, 0] * ray_x[u] + r[:, 1] * ray_y[v] + r[:, 2].
    dx, dy, dz = (r[i, 0] * ray_x[None, :] + r[i, 1] * ray_y[:, None] + r[i, 2] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(dz < 0, -pose.height / dz, np.nan)
    return pose.x + depth * dx, pose.y + depth * dy, depth


@dataclass(frozen=True)
class MapKey:
    """Everything a :class:`PixelToCellMap` depends on; equal keys give equal maps."""

    intrinsics: CameraIntrinsics
    pose: CameraPose
    grid: GridSpec
    image_size: tuple[int, int]


class PixelToCellMap:
    """Which pixels of an image (height, width) a frame's walk reads, and the cell each one sees.

    The walk reads sample columns every :attr:`column_step` pixels: the largest step that still
    puts a sample column in every cell at the farthest ground the grid shows, so nothing one cell
    wide is missed. In each sample column it reads, bottom-up, the top pixel of every run of pixels
    that see the same cell (an obstacle standing in a run's cell covers that pixel), every
    pixel that sees the ground outside the grid nearer than its first cell (it may hold an obstacle
    hiding cells behind it), and nothing above its last cell in the grid (such pixels can mark and
    hide nothing).

    ``samples[c]`` are the flat pixel indices (``row * width + column``) of sample column ``c``,
    bottom-up; ``sample_cells[c]`` the row-major cell each sees, :attr:`sink` where none (padding
    past a column's last sample included).
    """

    def __init__(self, key: MapKey) -> None:
        height, width = key.image_size
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        self.key = key
        grid = key.grid
        self.sink = grid.cells_x * grid.cells_y
        x, y, depth = ground_points(key.intrinsics, key.pose, height, width)
        cells = np.where(np.isfinite(depth), grid.cell_index(np.nan_to_num(x), np.nan_to_num(y)), -1)
        in_grid = cells >= 0
        farthest = float(depth[in_grid].max()) if in_grid.any() else 1.0
        self.column_step = max(1, int(key.intrinsics.fx * grid.resolution / farthest))
        columns = [c for c in range(0, width, self.column_step) if in_grid[:, c].any()]
        per_column = [self._column_samples(cells[:, c]) for c in columns]
        length = max((len(rows) for rows in per_column), default=0)
        self.samples = np.zeros((len(columns), length), dtype=np.int32)
        self.sample_cells = np.full((len(columns), length), self.sink, dtype=np.int32)
        for i, (c, rows) in enumerate(zip(columns, per_column)):
            self.samples[i, : len(rows)] = rows * width + c
            seen = cells[rows, c]
            self.sample_cells[i, : len(rows)] = np.where(seen >= 0, seen, self.sink)

    @staticmethod
    def _column_samples(column_cells: np.ndarray) -> np.ndarray:
        """Rows read in one column, bottom-up (see the class docstring)."""
        top = int(np.flatnonzero(column_cells >= 0)[0])
        rows = np.arange(column_cells.size - 1, top - 1, -1)
        cell = column_cells[rows]
        above = column_cells[np.maximum(rows - 1, 0)]
        keep = (cell < 0) | (cell != above) | (rows == top)
        return rows[keep]

    @classmethod
    def for_camera(
        cls,
        intrinsics: CameraIntrinsics,
        pose: CameraPose,
        grid: GridSpec,
        image_size: tuple[int, int],
        previous: PixelToCellMap | None = None,
    ) -> PixelToCellMap:
        """``previous`` when it was made for the same camera, pose, grid and image size, else a new map."""
        key = MapKey(intrinsics, pose, grid, (int(image_size[0]), int(image_size[1])))
        return previous if previous is not None and previous.key == key else cls(key)


def grid_from_labels(
    labels: np.ndarray, cell_map: PixelToCellMap, free_lut: np.ndarray, obstacle_lut: np.ndarray,
    confidence: np.ndarray | None = None, min_confidence: float = 0.0,
) -> np.ndarray:
    """The occupancy grid (int8, ``grid.shape``) of one label image (uint8 train IDs).

    ``free_lut`` and ``obstacle_lut`` are :func:`bialign_ros.classes.class_lookup` tables; a pixel is
    free space when its class is free and, where ``confidence`` (the H x W softmax probability of
    each label) is given, it is at least ``min_confidence`` there. See the module docstring for the
    rules; ValueError when the labels are not of the map's image size.
    """
    if labels.shape != cell_map.key.image_size:
        raise ValueError(
            f"labels of shape {labels.shape} do not match the pixel-to-cell map's {cell_map.key.image_size}"
        )
    out = np.full(cell_map.sink + 1, UNKNOWN, dtype=np.int8)  # the last entry takes samples that mark nothing
    if cell_map.samples.size:
        seen = np.take(labels.reshape(-1), cell_map.samples)
        obstacle = np.take(obstacle_lut, seen)
        first = obstacle.argmax(axis=1)
        columns = np.arange(seen.shape[0])
        has_obstacle = obstacle[columns, first]
        # Samples at or above a column's first obstacle are hidden behind it.
        block = np.where(has_obstacle, first, seen.shape[1])
        free = np.take(free_lut, seen) & (np.arange(seen.shape[1])[None, :] < block[:, None])
        if confidence is not None:
            free &= np.take(confidence.reshape(-1), cell_map.samples) >= np.float32(min_confidence)
        out[np.where(free, cell_map.sample_cells, cell_map.sink)] = FREE
        out[cell_map.sample_cells[columns[has_obstacle], first[has_obstacle]]] = OCCUPIED
    return out[:-1].reshape(cell_map.key.grid.shape)
