"""Checks shared by the tests of the two bundled model folders."""

from pathlib import Path


def assert_carries_whisper_within_the_size_limits(folder: Path, pipeline) -> None:
    """The folder carries Whisper's audio encoder with OpenAI's MIT notice and names it in its card, the loaded
    `pipeline` hears it, and the folder stays under 75 MB with no file over 45 MB."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    card = (folder / "README.md").read_text()
    assert "the audio encoder of OpenAI's Whisper" in card and "Copyright (c) 2022 OpenAI" in card
    assert (folder / "speech_model" / "LICENSE").read_text().startswith("MIT License")
    assert isinstance(pipeline.speech_model, WhisperEncoder)
    assert pipeline.feature_extractor.to_config()["kind"] == "whisper"
    files = [f for f in folder.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 75e6 and max(f.stat().st_size for f in files) < 45e6
