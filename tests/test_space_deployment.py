"""The README's Hugging Face Space instructions match the library they use: the documented `hf` commands take the
flags they are given, and the upload's patterns (read by huggingface_hub's own filter) send what a Space needs and
leave the rest."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub.utils import filter_repo_objects

REPOSITORY = Path(__file__).resolve().parents[1]
README = (REPOSITORY / "README.md").read_text()


def documented(command: str) -> list[str]:
    """The README's line that runs `hf COMMAND`, split as a shell splits it."""
    line = next(line for line in README.splitlines() if line.startswith(f"hf {command} "))
    return shlex.split(line)


def tracked_files() -> list[str]:
    """The repository's files as a fresh clone has them."""
    if not (REPOSITORY / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", "ls-files"], cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize("command", ["repos create", "upload"])
def test_the_documented_hf_commands_take_the_flags_they_are_given(command):
    hf = shutil.which("hf") or str(Path(sys.executable).with_name("hf"))
    if not Path(hf).exists():
        pytest.skip("the hf command of huggingface_hub is not installed")
    usage = subprocess.run([hf, *command.split(), "--help"], capture_output=True, text=True).stdout
    flags = {word.split("=")[0] for word in documented(command) if word.startswith("--")}
    assert flags and all(re.search(rf"(^|[ ,]){re.escape(flag)}\b", usage, re.M) for flag in flags), (flags, usage)
    if command == "upload":
        assert documented(command)[3:5] == [".", "."]  # the whole repository, to the Space's root


def test_the_upload_sends_what_a_space_needs_and_leaves_the_rest():
    words = documented("upload")
    excluded = [words[index + 1] for index, word in enumerate(words) if word == "--exclude"]
    files = tracked_files()
    sent = set(filter_repo_objects(files, ignore_patterns=excluded))

    needed = {"README.md", "app.py", "pre-requirements.txt", "requirements.txt"}
    needed |= {f for f in files if f.startswith(("pretrained/", "assets/"))}
    needed |= {f for f in files if f.endswith(".py") and not f.startswith(("tests/", "scripts/"))}
    assert needed <= sent, sorted(needed - sent)
    assert not any(f.startswith(("tests/", ".ci/", "docs/", "scripts/")) for f in sent)
    assert set(filter_repo_objects([".venv/bin/python", "runs/a2l/model/x.safetensors", "demo.mp4"],
                                   ignore_patterns=excluded)) == set()


def test_the_python_form_of_the_upload_binds_to_huggingface_hubs_signature():
    import inspect

    from huggingface_hub import HfApi

    call = re.search(r"HfApi\(\)\.upload_folder\((.*?)\)", README.replace("\n", " ")).group(1)
    keywords = {name: None for name in re.findall(r"(\w+)=", call)}
    inspect.signature(HfApi.upload_folder).bind(None, **keywords)
    assert set(keywords) == {"repo_id", "repo_type", "folder_path", "ignore_patterns"}
