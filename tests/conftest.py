"""Shared test set-up: no test reaches the real Hub or touches the real Hugging Face cache.

Every test runs offline (`HF_HUB_OFFLINE=1`) with an empty, temporary HF cache. A test that needs a Hub
asks for the `local_hub` fixture: a small HTTP server on 127.0.0.1 (tests/hub_server.py) that the
huggingface_hub client is pointed at, with offline mode switched off for that test only.

huggingface_hub reads its settings (HF_ENDPOINT, HF_HUB_OFFLINE, HF_HOME, ...) from the environment once,
at import, into `huggingface_hub.constants`; so the fixtures set both the environment variable (for code
that reads it later, or in a subprocess) and the constant (for the client already imported).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import constants as hf_constants

# Media files shared between sessions of this project (not in the repository): tests that need one skip
# when it is absent.
SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def _load_hub_server():
    # Loaded by path: with --import-mode=importlib the tests folder is not on sys.path.
    spec = importlib.util.spec_from_file_location("talking_head_tests_hub_server", Path(__file__).with_name("hub_server.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hub_server = _load_hub_server()


def shared_media_path(relative: str | Path) -> Path:
    """The path of a file under SHARED_MEDIA; skips the calling test with a clear reason when it is absent."""
    path = SHARED_MEDIA / relative
    if not path.is_file():
        pytest.skip(f"shared media file not available: {path}")
    return path


@pytest.fixture
def shared_media():
    """`shared_media("clips/x.mp4")` gives the path of a shared media file, or skips the test if it is absent."""
    return shared_media_path


def _set_offline(monkeypatch, offline: bool) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture(autouse=True)
def offline_hub_with_empty_cache(tmp_path_factory, monkeypatch):
    """Every test: offline, a temporary HF home and cache, no token, no proxy."""
    hf_home = tmp_path_factory.mktemp("hf_home")
    hub_cache = hf_home / "hub"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_XET_CACHE", str(hf_home / "xet"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "HF_HUB_DISABLE_TELEMETRY": True,
    }.items():
        if hasattr(hf_constants, name):
            monkeypatch.setattr(hf_constants, name, value)
    _set_offline(monkeypatch, True)
    yield hub_cache


@pytest.fixture
def local_hub(monkeypatch):
    """A local Hub server that the huggingface_hub client talks to, online, for this test only.

    Yields a `hub_server.LocalHub`: `.add_repo(repo_id, folder)` serves a folder as a model repo, `.url`
    is its endpoint and `.requests` lists the `(method, path)` of every request it received.
    """
    from huggingface_hub.utils import close_session

    hub = hub_server.LocalHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(hf_constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    # The server is local: never send its requests through a proxy.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    _set_offline(monkeypatch, False)
    close_session()  # the shared HTTP client is made afresh, with the settings above
    try:
        yield hub
    finally:
        close_session()  # drop kept-alive connections before the server goes
        hub.stop()


@pytest.fixture(scope="session")
def face_points() -> np.ndarray:
    """68 landmarks of a frontal face in a 64-pixel crop: a jaw arc, brows, nose, eyes and an open mouth."""
    angles = np.linspace(np.pi * 0.95, np.pi * 0.05, 17)
    jaw = np.stack([32 - 22 * np.cos(angles), 30 + 22 * np.sin(angles)], axis=1)
    brows = np.stack([np.r_[np.linspace(14, 28, 5), np.linspace(36, 50, 5)], np.full(10, 18.0)], axis=1)
    nose = np.stack([np.r_[np.full(4, 32.0), np.linspace(28, 36, 5)], np.r_[np.linspace(22, 34, 4), np.full(5, 36.0)]], 1)
    eye = np.stack([np.cos(np.linspace(0, 2 * np.pi, 7)[:-1]) * 4, np.sin(np.linspace(0, 2 * np.pi, 7)[:-1]) * 2], 1)
    eyes = np.r_[eye + (22, 24), eye + (42, 24)]
    outer = np.stack([32 + 9 * np.cos(np.linspace(np.pi, -np.pi, 13)[:-1]),
                      44 + 4 * np.sin(np.linspace(np.pi, -np.pi, 13)[:-1])], axis=1)
    inner = np.stack([32 + 6 * np.cos(np.linspace(np.pi, -np.pi, 9)[:-1]),
                      44 + 2.5 * np.sin(np.linspace(np.pi, -np.pi, 9)[:-1])], axis=1)
    points = np.concatenate([jaw, brows, nose, eyes, outer, inner])
    assert points.shape == (68, 2)
    return points
