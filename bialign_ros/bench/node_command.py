"""The command line that starts ``bialign_node`` on a benchmark configuration, and the outputs a benchmark
subscribes to (pure Python)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bialign_ros.cli.processes import python_module
from bialign_ros.ground_outputs import GROUND_OUTPUTS
from bialign_ros.outputs import OPTIONAL_OUTPUTS

SUBSCRIBABLE = (*OPTIONAL_OUTPUTS, *GROUND_OUTPUTS)
"""Outputs the node computes only while subscribed: ``--outputs all`` subscribes to all of them."""


def outputs_arg(text: str) -> tuple[str, ...]:
    """``--outputs``: the outputs subscribed besides the labels, in :data:`SUBSCRIBABLE` order."""
    if text == "all":
        return SUBSCRIBABLE
    names = {name.strip() for name in text.split(",") if name.strip()} - {"labels"}
    unknown = names - set(SUBSCRIBABLE)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown output(s) {', '.join(sorted(unknown))}; "
                                         f"known: labels, {', '.join(SUBSCRIBABLE)}, all")
    return tuple(name for name in SUBSCRIBABLE if name in names)


@dataclass(frozen=True)
class NodeSpec:
    """What the node runs: its weights, the Segmenter's device, precision, backend, input scale and compilation,
    and the frames it infers at once."""

    weights: str
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    input_scale: float = 1.0
    cameras: tuple[str, ...] = ()
    """Cameras of one node (parameter ``cameras``); empty: the single-camera node."""
    compile: bool = False
    """The node's ``compile`` (torch backend: torch.compile)."""
    inference_streams: int = 1
    """The node's ``inference_streams``: frames in inference at once."""

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
    if spec.compile:
        words += ["-p", "compile:=true"]
    if spec.inference_streams != 1:
        words += ["-p", f"inference_streams:={spec.inference_streams}"]
    return python_module("bialign_ros.node", "--ros-args", *words, *ros_args)
