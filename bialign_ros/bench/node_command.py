"""The command line that starts ``bialign_node`` on a benchmark configuration (pure Python)."""

from __future__ import annotations

from dataclasses import dataclass

from bialign_ros.cli.processes import python_module


@dataclass(frozen=True)
class NodeSpec:
    """What the node runs: its weights and the Segmenter's device, precision, backend and input scale."""

    weights: str
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    input_scale: float = 1.0
    cameras: tuple[str, ...] = ()
    """Cameras of one node (parameter ``cameras``); empty: the single-camera node."""

    def camera_names(self) -> list[str]:
        """The cameras whose topics the node serves: ``['']`` for the single-camera node."""
        return list(self.cameras) or [""]


def node_command(spec: NodeSpec, *ros_args: str) -> list[str]:
    """The command line starting the node with ``spec`` (and further ``--ros-args`` words)."""
    params = {"weights": spec.weights, "device": spec.device, "precision": spec.precision,
              "backend": spec.backend, "input_scale": spec.input_scale}
    words = [w for key, value in params.items() for w in ("-p", f"{key}:={value}")]
    if spec.cameras:
        words += ["-p", f"cameras:=[{', '.join(spec.cameras)}]"]
    return python_module("bialign_ros.node", "--ros-args", *words, *ros_args)
