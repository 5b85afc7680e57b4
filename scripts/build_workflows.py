"""Write the shipped ComfyUI workflows: workflows/*.json (UI format) and workflows/api/*.json (API format).

Both formats come from one description per pipeline, with the pack's widgets read from the nodes' own
INPUT_TYPES, so they cannot drift from the node definitions (tests/test_comfy_workflows.py checks that the
files match this script). Run from the repository root: python scripts/build_workflows.py
"""

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "workflows"

# ComfyUI core nodes the workflows use (ComfyUI 0.3.64): widget names, the extra values the UI stores after
# them (upload and preview widgets), and outputs. Classic (name, type) pairs, as /object_info reports them.
CORE_NODES = {
    "LoadAudio": {"widgets": [("audio", "COMBO")], "ui_extra": [None, None], "outputs": [("AUDIO", "AUDIO")],
                  "title": "Load Audio"},
    "LoadImage": {"widgets": [("image", "COMBO")], "ui_extra": ["image"], "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
                  "title": "Load Image"},
    "LoadVideo": {"widgets": [("file", "COMBO")], "ui_extra": ["image"], "outputs": [("VIDEO", "VIDEO")],
                  "title": "Load Video"},
    "GetVideoComponents": {"inputs": [("video", "VIDEO", False)], "widgets": [], "ui_extra": [],
                           "outputs": [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")],
                           "title": "Get Video Components"},
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)  # widget values that differ from the defaults
    links: dict = field(default_factory=dict)  # input name -> (source node id, output slot)


DAE_TALKER = [
    Node(1, "LoadAudio", (0, 0), {"audio": "jfk.flac"}),
    Node(2, "TalkingHeadLoadDAETalker", (0, 200)),
    Node(3, "TalkingHeadAudioEncoder", (380, 0), links={"model": (2, 0), "audio": (1, 0)}),
    Node(4, "TalkingHeadPosePredictor", (380, 160), links={"model": (2, 0), "speech": (3, 0)}),
    Node(5, "TalkingHeadEditPose", (700, 160), links={"pose": (4, 0)}),
    Node(6, "TalkingHeadSpeech2Latent", (1020, 0), links={"model": (2, 0), "speech": (3, 0), "pose": (5, 0)}),
    Node(7, "TalkingHeadDAEDecode", (1340, 0), {"output_size": 256}, links={"model": (2, 0), "latents": (6, 0)}),
    Node(8, "TalkingHeadSaveVideo", (1680, 0), {"filename_prefix": "talking_head/dae_talker"},
         links={"images": (7, 0), "fps": (7, 1), "audio": (1, 0)}),
]

LANDMARK_DIFFUSION = [
    Node(1, "LoadImage", (0, 0), {"image": "astronaut.jpg"}),
    Node(2, "LoadAudio", (0, 380), {"audio": "jfk.flac"}),
    Node(3, "TalkingHeadLoadLandmarkDiffusion", (0, 560)),
    Node(4, "TalkingHeadAudioEncoder", (380, 380), links={"model": (3, 0), "audio": (2, 0)}),
    Node(5, "TalkingHeadFindFace", (380, 0), links={"model": (3, 0), "image": (1, 0)}),
    Node(6, "TalkingHeadA2L", (700, 200), links={"model": (3, 0), "speech": (4, 0), "face": (5, 0)}),
    Node(7, "TalkingHeadLandmarkRender", (1020, 420), links={"landmarks": (6, 0)}),
    Node(8, "TalkingHeadL2VDenoise", (1020, 0), links={"model": (3, 0), "face": (5, 0), "landmarks": (6, 0)}),
    Node(9, "TalkingHeadPasteBack", (1340, 0), links={"face": (5, 0), "crops": (8, 0), "landmarks": (6, 0),
                                                       "model": (3, 0)}),
    Node(10, "TalkingHeadSaveVideo", (1660, 0), {"filename_prefix": "talking_head/landmark_diffusion"},
         links={"images": (9, 0), "fps": (9, 1), "audio": (2, 0)}),
    Node(11, "TalkingHeadSaveVideo", (1340, 420), {"filename_prefix": "talking_head/landmarks"},
         links={"images": (7, 0), "fps": (7, 1), "audio": (2, 0)}),
]

DUBBING = [
    Node(1, "LoadVideo", (0, 0), {"file": "obama_head_motion.mp4"}),
    Node(2, "GetVideoComponents", (0, 380), links={"video": (1, 0)}),
    Node(3, "LoadAudio", (0, 560), {"audio": "jfk.flac"}),
    Node(4, "TalkingHeadLoadLandmarkDiffusion", (0, 760)),
    Node(5, "TalkingHeadAudioEncoder", (380, 560), links={"model": (4, 0), "audio": (3, 0)}),
    Node(6, "TalkingHeadTrackFace", (380, 200), links={"model": (4, 0), "images": (2, 0), "frame_rate": (2, 2)}),
    Node(7, "TalkingHeadDubFrames", (760, 200),
         links={"model": (4, 0), "speech": (5, 0), "face_track": (6, 0), "images": (2, 0)}),
    Node(8, "TalkingHeadSaveVideo", (1140, 200), {"filename_prefix": "talking_head/dubbed"},
         links={"images": (7, 0), "fps": (7, 1), "audio": (3, 0)}),
]

AVATAR = [
    Node(1, "TalkingHeadTrainDAEAvatar", (0, 0), {"name": "grid-s1-avatar", "video": "grid_s1_footage.mp4"}),
    Node(2, "LoadAudio", (0, 320), {"audio": "jfk.flac"}),
    Node(3, "TalkingHeadAudioEncoder", (380, 320), links={"model": (1, 0), "audio": (2, 0)}),
    Node(4, "TalkingHeadPosePredictor", (380, 0), links={"model": (1, 0), "speech": (3, 0)}),
    Node(5, "TalkingHeadSpeech2Latent", (700, 0), links={"model": (1, 0), "speech": (3, 0), "pose": (4, 0)}),
    Node(6, "TalkingHeadDAEDecode", (1020, 0), {"output_size": 256}, links={"model": (1, 0), "latents": (5, 0)}),
    Node(7, "TalkingHeadSaveVideo", (1360, 0), {"filename_prefix": "talking_head/avatar"},
         links={"images": (6, 0), "fps": (6, 1), "audio": (2, 0)}),
]

PIPELINES = {"dae_talker": DAE_TALKER, "landmark_diffusion": LANDMARK_DIFFUSION, "dubbing": DUBBING, "avatar": AVATAR}


def _pack_nodes():
    from talking_head import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    return NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS


def node_spec(node_type: str) -> dict:
    """A node's link inputs [(name, type, optional)], widgets [(name, type, default, has_seed_control)], outputs
    [(name, type)], the values the UI stores after its widgets, and its title."""
    if node_type in CORE_NODES:
        core = CORE_NODES[node_type]
        return {"inputs": core.get("inputs", []), "widgets": [(name, kind, None, False) for name, kind in core["widgets"]],
                "ui_extra": core["ui_extra"], "outputs": core["outputs"], "title": core["title"]}
    classes, titles = _pack_nodes()
    node_class = classes[node_type]
    declared = node_class.INPUT_TYPES()
    inputs, widgets = [], []
    for section in ("required", "optional"):
        for name, (kind, options) in declared.get(section, {}).items():
            kind_name = "COMBO" if isinstance(kind, list) else kind
            if kind_name in WIDGET_TYPES:
                default = options.get("default", kind[0] if isinstance(kind, list) else None)
                widgets.append((name, kind_name, default, bool(options.get("control_after_generate"))))
            else:
                inputs.append((name, kind_name, section == "optional"))
    names = getattr(node_class, "RETURN_NAMES", node_class.RETURN_TYPES)
    return {"inputs": inputs, "widgets": widgets, "ui_extra": [], "title": titles[node_type],
            "outputs": list(zip(names, node_class.RETURN_TYPES))}


def _widget_values(node: Node, spec: dict) -> dict:
    values = {name: default for name, _, default, _ in spec["widgets"]}
    unknown = set(node.widgets) - set(values)
    if unknown:
        raise ValueError(f"node {node.id} ({node.type}) has no widgets {sorted(unknown)}")
    values.update(node.widgets)
    return values


def api_workflow(nodes: list[Node]) -> dict:
    """The workflow in ComfyUI's API format, as posted to /prompt."""
    workflow = {}
    for node in nodes:
        spec = node_spec(node.type)
        inputs = {name: value for name, value in _widget_values(node, spec).items() if name not in node.links}
        inputs.update({name: [str(source), slot] for name, (source, slot) in node.links.items()})
        workflow[str(node.id)] = {"class_type": node.type, "inputs": inputs, "_meta": {"title": spec["title"]}}
    return workflow


def ui_workflow(nodes: list[Node], name: str) -> dict:
    """The workflow in ComfyUI's UI (LiteGraph) format, for the canvas and the template browser."""
    links, outgoing = [], {}
    for node in nodes:
        for input_name, (source, slot) in node.links.items():
            links.append([len(links) + 1, source, slot, node.id, input_name])
            outgoing.setdefault((source, slot), []).append(len(links))
    specs = {node.id: node_spec(node.type) for node in nodes}
    ui_links, ui_nodes = [], []
    for node in nodes:
        spec = specs[node.id]
        incoming = {link[4]: link[0] for link in links if link[3] == node.id}
        inputs = [{"name": name, "type": kind, **({"shape": 7} if optional else {}), "link": incoming.get(name)}
                  for name, kind, optional in spec["inputs"]]
        inputs += [{"name": name, "type": kind, "widget": {"name": name}, "link": incoming[name]}
                   for name, kind, _, _ in spec["widgets"] if name in incoming]
        input_slots = {entry["name"]: slot for slot, entry in enumerate(inputs)}
        values = []
        for widget, value in _widget_values(node, spec).items():
            values.append(value)
            if any(name == widget and control for name, _, _, control in spec["widgets"]):
                values.append("fixed")
        ui_nodes.append({
            "id": node.id, "type": node.type, "pos": list(node.pos), "size": [300, 130], "flags": {},
            "order": 0, "mode": 0, "inputs": inputs,
            "outputs": [{"name": output_name, "type": kind, "slot_index": slot, "links": outgoing.get((node.id, slot))}
                        for slot, (output_name, kind) in enumerate(spec["outputs"])],
            "properties": {"Node name for S&R": node.type},
            "widgets_values": values + spec["ui_extra"],
        })
        for input_name, link_id in incoming.items():
            source, slot = node.links[input_name]
            ui_links.append([link_id, source, slot, node.id, input_slots[input_name], specs[source]["outputs"][slot][1]])
    for order, node_id in enumerate(_execution_order(nodes)):
        next(ui_node for ui_node in ui_nodes if ui_node["id"] == node_id)["order"] = order
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"talking-head-diffusion/{name}")), "revision": 0,
        "last_node_id": max(node.id for node in nodes), "last_link_id": len(ui_links),
        "nodes": ui_nodes, "links": sorted(ui_links), "groups": [], "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
    }


def _execution_order(nodes: list[Node]) -> list[int]:
    done, order = set(), []
    while len(order) < len(nodes):
        for node in nodes:
            if node.id not in done and all(source in done for source, _ in node.links.values()):
                done.add(node.id)
                order.append(node.id)
    return order


def render_workflows() -> dict[Path, str]:
    """Every workflow file's path and text."""
    files = {}
    for name, nodes in PIPELINES.items():
        files[WORKFLOWS / f"{name}.json"] = json.dumps(ui_workflow(nodes, name), indent=1) + "\n"
        files[WORKFLOWS / "api" / f"{name}.json"] = json.dumps(api_workflow(nodes), indent=1) + "\n"
    return files


if __name__ == "__main__":
    for path, text in render_workflows().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
