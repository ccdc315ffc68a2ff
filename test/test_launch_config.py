"""The launch file, setup.py, the params file, the RViz config and the node's interface agree.

Runs everywhere: the launch file is parsed with ``ast`` (launch/launch_ros are not needed), the
YAML files with PyYAML, and the node's names come from its pure-Python modules.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from bialign_ros.node_interface import CLASS_TABLE_PARAMS, DEPTH_TOPIC, INPUT_TOPIC, NODE_NAME, OUTPUT_TOPICS
from bialign_ros.node_params import PARAM_SPECS, defaults, validate_params
from bialign_ros.transport import PROFILE_NAME

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "bialign.launch.py"
LAUNCH_ARGUMENTS = {"camera", "depth", "cameras", "image_transport", "namespace", "params_file", "weights", "device",
                    "rviz"}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords}


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _value(expr: ast.expr, tree: ast.Module) -> object:
    """A literal, or the literal a module-level name is assigned."""
    if isinstance(expr, ast.Name):
        for node in tree.body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == expr.id:
                return ast.literal_eval(node.value)
    return ast.literal_eval(expr)


def _launch_nodes() -> dict[str, dict[str, object]]:
    tree = ast.parse(LAUNCH.read_text())
    nodes = {}
    for call in _calls(tree, "Node"):
        kw = _keywords(call)
        resolved = {k: _value(v, tree) for k, v in kw.items() if k in ("package", "executable", "name")}
        nodes[resolved["executable"]] = kw | resolved
    return nodes


def _overrides(tree: ast.Module, node: dict[str, object]) -> dict[str, bool]:
    """The parameters the launch file sets on the node after its params file: name -> set only
    under a condition."""
    name = next(e.id for e in node["parameters"].elts if isinstance(e, ast.Name))
    conditional = {id(n) for branch in ast.walk(tree) if isinstance(branch, ast.If)
                   for n in ast.walk(branch)}
    found = {}
    for assign in (n for n in ast.walk(tree) if isinstance(n, ast.Assign)):
        target = assign.targets[0]
        if isinstance(target, ast.Name) and target.id == name and isinstance(assign.value, ast.Dict):
            found |= {k.value: id(assign) in conditional for k in assign.value.keys}
        elif isinstance(target, ast.Subscript) and getattr(target.value, "id", "") == name:
            found |= {key: id(assign) in conditional for key in _keys(tree, target.slice)}
    return found


def _keys(tree: ast.Module, key: ast.expr) -> list[str]:
    """A literal key, or every value of a ``for`` loop over a literal tuple that binds it."""
    if isinstance(key, ast.Name):
        loop = next(n for n in ast.walk(tree) if isinstance(n, ast.For) and getattr(n.target, "id", "") == key.id)
        return list(ast.literal_eval(loop.iter))
    return [ast.literal_eval(key)]


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONSOLE_SCRIPTS":
            entries = ast.literal_eval(node.value)
            return dict(e.replace(" ", "").split("=") for e in entries)
    raise AssertionError("CONSOLE_SCRIPTS not found in setup.py")


def test_launch_file_declares_the_documented_arguments_with_descriptions():
    tree = ast.parse(LAUNCH.read_text())
    declared = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        declared[call.args[0].value] = _keywords(call)
    assert set(declared) == LAUNCH_ARGUMENTS
    for name, kw in declared.items():
        assert "description" in kw and _strings(kw["description"]), f"argument {name} has no description"
    assert "default_value" not in declared["weights"]  # required: launching without it fails clearly


def test_launch_file_runs_the_node_executable_of_setup_py():
    nodes = _launch_nodes()
    scripts = _console_scripts()
    node = nodes["bialign_node"]
    assert scripts["bialign_node"] == "bialign_ros.node:main"
    assert "bialign_camera_sim" in scripts
    assert node["package"] == "bialign_ros" and node["name"] == NODE_NAME
    remapped = [ast.literal_eval(t.elts[0]) for t in node["remappings"].elts]
    assert remapped == [INPUT_TOPIC, DEPTH_TOPIC]
    overrides = _overrides(ast.parse(LAUNCH.read_text()), node)
    assert set(overrides) <= {s.name for s in PARAM_SPECS}
    assert {"weights", "device", "cameras", "image_transport"} <= set(overrides)
    # launch_ros refuses an empty list: cameras is passed only when the argument is given; so is
    # image_transport, which would otherwise disagree with a params file setting input_transport.
    assert overrides["cameras"] and overrides["image_transport"] and not overrides["weights"]


def test_launch_file_refers_only_to_shipped_config_files():
    files = {s for s in _strings(ast.parse(LAUNCH.read_text())) if "." in s and "/" not in s and " " not in s}
    referenced = {"bialign.yaml", "bialign.rviz"} | ({PROFILE_NAME} if "PROFILE_NAME" in LAUNCH.read_text() else set())
    assert {f for f in files if f.endswith((".yaml", ".rviz", ".xml"))} <= referenced
    for name in referenced:
        assert (ROOT / "config" / name).is_file(), name
    data_files = (ROOT / "setup.py").read_text()
    assert 'glob("config/*.yaml")' in data_files and 'glob("config/*.rviz")' in data_files
    assert 'glob("config/*.xml")' in data_files and 'glob("launch/*.py")' in data_files


def test_params_file_holds_every_parameter_with_its_default():
    data = yaml.safe_load((ROOT / "config" / "bialign.yaml").read_text())
    (key, section), = data.items()
    assert key.rsplit("/", 1)[-1] == NODE_NAME
    params = section["ros__parameters"]
    assert params == {name: list(v) if isinstance(v, tuple) else v for name, v in defaults().items()}
    assert not set(params) & set(CLASS_TABLE_PARAMS)  # read-only, set by the node from the model
    validate_params({**params, "weights": "model.pt"})


def test_rviz_config_shows_camera_overlay_edges_confidence_grid_and_points_from_node_topics():
    config = yaml.safe_load((ROOT / "config" / "bialign.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {d["Name"]: d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert set(topics.values()) == {INPUT_TOPIC, *(OUTPUT_TOPICS[k] for k in ("overlay", "edges", "confidence"))}
    shown = {d["Class"]: d["Topic"]["Value"] for d in displays}
    assert shown["rviz_default_plugins/Map"] == OUTPUT_TOPICS["grid"]
    assert shown["rviz_default_plugins/PointCloud2"] == OUTPUT_TOPICS["points"]
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == defaults()["grid_frame"]
    rviz = _launch_nodes()["rviz2"]
    assert "IfCondition" in ast.dump(rviz["condition"]) and "rviz" in _strings(rviz["condition"])
    assert [ast.literal_eval(t.elts[0]) for t in rviz["remappings"].elts] == [INPUT_TOPIC]


def test_transport_profile_enlarges_shared_memory_for_full_resolution_frames():
    root = ET.parse(ROOT / "config" / PROFILE_NAME).getroot()
    ns = {"d": root.tag.split("}")[0].strip("{")}
    shm = next(t for t in root.iterfind(".//d:transport_descriptor", ns) if t.findtext("d:type", None, ns) == "SHM")
    frame_2048x1024_rgb8 = 2048 * 1024 * 3
    assert int(shm.findtext("d:maxMessageSize", None, ns)) > frame_2048x1024_rgb8
    assert int(shm.findtext("d:segment_size", None, ns)) >= 4 * frame_2048x1024_rgb8
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext(".//d:useBuiltinTransports", None, ns) == "false"
    used = {t.text for t in participant.iterfind(".//d:userTransports/d:transport_id", ns)}
    assert used == {t.findtext("d:transport_id", None, ns) for t in root.iterfind(".//d:transport_descriptor", ns)}
