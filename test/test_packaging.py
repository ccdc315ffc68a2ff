"""The ament_python package builds with a real colcon and installs with pip."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPTS = ["bialign_segment", "bialign_benchmark", "bialign_convert", "bialign_synth", "bialign_node",
           "bialign_camera_sim", "bialign_make_bag", "bialign_bag_play", "bialign_bag_eval", "bialign_eval_live"]


def _declared_scripts() -> set[str]:
    eps = metadata.distribution("bialign_ros").entry_points
    return {ep.name for ep in eps if ep.group == "console_scripts"}


def test_pip_install_declares_console_scripts():
    declared = _declared_scripts()
    assert set(SCRIPTS) <= declared
    for name in declared:
        assert (BIN / name).exists(), f"{name} missing from {BIN}"


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    colcon = BIN / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment")
    work = tmp_path_factory.mktemp("colcon")
    src = work / "src" / "bialign_ros"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv*", ".git", "build", "install", "log",
                                                             "*.egg-info", "__pycache__", ".cache", "demo_out"))
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    proc = subprocess.run([str(colcon), "--log-base", str(work / "log"), "build", "--base-paths", str(work / "src"),
                           "--build-base", str(work / "build"), "--install-base", str(work / "install")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "install"


def test_colcon_install_layout(colcon_install: Path):
    pkg = colcon_install / "bialign_ros"
    assert (pkg / "share/ament_index/resource_index/packages/bialign_ros").exists()
    assert (pkg / "share/bialign_ros/package.xml").exists()
    for name in _declared_scripts():
        assert (pkg / "lib/bialign_ros" / name).exists(), f"ros2 run would not find {name}"
    for sub in ("launch", "config"):
        if not (ROOT / sub).is_dir():
            continue
        src_files = sorted(p.name for p in (ROOT / sub).iterdir() if p.is_file())
        installed = sorted(p.name for p in (pkg / "share/bialign_ros" / sub).iterdir())
        assert set(src_files) <= set(installed), f"{sub}/ not fully installed"


def test_colcon_install_runs(colcon_install: Path):
    pkg = colcon_install / "bialign_ros"
    site = next((pkg / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=f"{site}:{os.environ.get('PYTHONPATH', '')}")
    code = "import bialign_ros, sys; print(bialign_ros.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=colcon_install, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().startswith(str(site)), "the install tree's package was not the one imported"
    proc = subprocess.run([str(pkg / "lib/bialign_ros/bialign_convert"), "--help"], env=env, cwd=colcon_install,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()


ROSDEP_KEYS = {
    "ament_index_python": "ament_index_python", "cv_bridge": "cv_bridge", "cv2": "python3-opencv",
    "diagnostic_msgs": "diagnostic_msgs", "launch": "launch", "launch_ros": "launch_ros",
    "matplotlib": "python3-matplotlib", "numpy": "python3-numpy", "onnxruntime": "python3-onnxruntime-pip",
    "rcl_interfaces": "rcl_interfaces", "rclpy": "rclpy", "rosbags": "python3-rosbags-pip",
    "rosgraph_msgs": "rosgraph_msgs", "rosidl_parser": "rosidl_parser", "sensor_msgs": "sensor_msgs",
    "torch": "python3-torch", "tqdm": "python3-tqdm", "vision_msgs": "vision_msgs",
}
"""Top-level modules and the rosdep key that installs each. Keys declared for what the code reaches
only through other packages (std_msgs, lifecycle_msgs, python3-yaml) are not listed."""


def _imported_modules() -> set[str]:
    modules = set()
    for path in [*(ROOT / "bialign_ros").rglob("*.py"), *(ROOT / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def test_package_xml_declares_exactly_the_imported_dependencies():
    root = ElementTree.parse(ROOT / "package.xml").getroot()
    declared = {e.text for e in root.iter() if e.tag in ("depend", "exec_depend")}
    imported = _imported_modules()
    for module, key in ROSDEP_KEYS.items():
        assert (module in imported) == (key in declared), (
            f"{module} is {'imported' if module in imported else 'not imported'} "
            f"but {key} is {'declared' if key in declared else 'not declared'}")
    assert root.findtext("license") == "Apache-2.0"
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
