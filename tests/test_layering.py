"""Import arrows point down: the engine (models, media, faces, pipelines, prepared datasets) imports nothing from the
video jobs, the front ends (command line, ComfyUI nodes, Gradio demo), training or evaluation, and evaluation nothing
from training, so each can be used and changed on its own."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
ENGINE = ("hub_models", "media", "faces", "pipelines", "convert", "data")
ABOVE_THE_ENGINE = ("cli", "nodes", "gradio_app", "training", "evaluation", "app", "jobs")


def imported_packages(source: Path) -> set[str]:
    """The project's top-level modules that a file imports (relative imports resolved against the package root)."""
    depth = len(source.relative_to(PACKAGE).parts) - 1  # a file in hub_models/ is one level below the root
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = [] if node.level > depth else list(source.relative_to(PACKAGE).parts[:depth - node.level + 1])
            parts += node.module.split(".") if node.module else [alias.name for alias in node.names]
            found.add(parts[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("talking_head."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("talking_head.")}
    return found


@pytest.mark.parametrize("package", ENGINE)
def test_the_engine_imports_nothing_from_above_it(package):
    for source in sorted((PACKAGE / package).glob("*.py")):
        reached = imported_packages(source) & set(ABOVE_THE_ENGINE)
        assert not reached, f"{source.relative_to(PACKAGE)} imports {sorted(reached)}"


def test_evaluation_imports_nothing_from_training_which_uses_its_metrics():
    for source in sorted((PACKAGE / "evaluation").glob("*.py")):
        reached = imported_packages(source) & {"training", "jobs", "cli", "nodes", "gradio_app", "app"}
        assert not reached, f"{source.relative_to(PACKAGE)} imports {sorted(reached)}"


def test_the_check_sees_relative_imports():
    assert {"faces", "data"} <= imported_packages(PACKAGE / "evaluation" / "holdout.py")
