"""One measurement in a process of its own, so that memory peaks and thread pools start clean.

``python -m bialign_ros.bench.worker KIND OPTIONS.json RECORD.json`` reads the options of one
measurement (a JSON object of :class:`~bialign_ros.bench.measure.MeasureOptions` for KIND
``configuration``, of :class:`~bialign_ros.bench.node_bench.NodeBenchOptions` for ``node``),
runs it and writes its JSON record. :func:`run_in_child` is the caller's side.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any


class WorkerFailed(RuntimeError):
    """The measurement in the child process failed; the message ends with its error output."""


def _kinds() -> dict[str, tuple[type, Callable[[Any], dict[str, Any]]]]:
    from bialign_ros.bench.measure import MeasureOptions, measure_configuration
    from bialign_ros.bench.node_bench import NodeBenchOptions, run_node_benchmark

    return {"configuration": (MeasureOptions, measure_configuration), "node": (NodeBenchOptions, run_node_benchmark)}


def run_in_child(kind: str, options: Any, record: Path) -> dict[str, Any]:
    """Run the measurement ``kind`` with ``options`` (a dataclass) in a child process; its record,
    also written to ``record``. Raises :class:`WorkerFailed`."""
    job = record.with_name(f"{record.stem}.options.json")
    job.write_text(json.dumps(asdict(options)))
    record.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "bialign_ros.bench.worker", kind, str(job), str(record)],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not record.is_file():
        raise WorkerFailed(f"failed: {proc.stderr.strip()[-400:]}")
    return json.loads(record.read_text())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process; returns its exit code."""
    kind, job, record = sys.argv[1:] if argv is None else argv
    options_type, measure = _kinds()[kind]
    result = measure(options_type(**json.loads(Path(job).read_text())))
    Path(record).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
