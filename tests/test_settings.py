"""Sampling settings: one place for the defaults, every field checked, and every front end showing that default."""

import inspect

import pytest

from talking_head.errors import TalkingHeadError
from talking_head.pipelines.settings import DEFAULT_SETTINGS, PAPER_SETTINGS, SamplingSettings


@pytest.mark.parametrize("field, value, message", [
    ("num_inference_steps", 0, "steps must be a whole number from 1 to 1000, not 0"),
    ("num_inference_steps", 100000, "from 1 to 1000"),
    ("num_inference_steps", 2.5, "not 2.5"),
    ("batch_size", 0, "batch size must be a whole number from 1"),
    ("seed", -1, "seed must be a whole number from 0"),
    ("sampler", "magic", "unknown sampler 'magic'; choose one of ddim, dpm++"),
])
def test_every_field_is_checked_with_a_message_that_names_it(field, value, message):
    with pytest.raises(TalkingHeadError, match=message.replace("+", r"\+")):
        DEFAULT_SETTINGS["dae"].updated(**{field: value})


def test_updated_keeps_the_fields_given_as_none():
    changed = PAPER_SETTINGS["landmark"].updated(num_inference_steps=50, sampler=None, seed=None, batch_size=4)
    assert changed == SamplingSettings(50, "ddim", 0, 4)
    assert DEFAULT_SETTINGS["dae"].sampler == "dpm++" and PAPER_SETTINGS["dae"] == SamplingSettings(100, "ddim")


def test_the_pipelines_and_the_nodes_default_to_the_one_setting():
    from talking_head import NODE_CLASS_MAPPINGS
    from talking_head.pipelines.dae_talker import DAETalkerPipeline
    from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

    for pipeline_class, name, node in ((DAETalkerPipeline, "dae", "TalkingHeadDAEDecode"),
                                       (LandmarkDiffusionPipeline, "landmark", "TalkingHeadL2VDenoise")):
        parameters = inspect.signature(pipeline_class.__call__).parameters
        default = DEFAULT_SETTINGS[name]
        assert parameters["num_inference_steps"].default == default.num_inference_steps
        assert parameters["sampler"].default == default.sampler and parameters["batch_size"].default == default.batch_size
        widgets = NODE_CLASS_MAPPINGS[node].INPUT_TYPES()["required"]
        assert widgets["steps"][1]["default"] == default.num_inference_steps
        assert widgets["sampler"][1]["default"] == default.sampler


def test_the_command_line_takes_the_defaults_or_the_papers(monkeypatch, tmp_path):
    from talking_head import cli

    parser = cli.build_parser()
    fast = parser.parse_args(["generate", "--audio", "a.wav", "-o", "x.mp4"])
    assert cli._sampling(fast, "dae") == DEFAULT_SETTINGS["dae"]
    paper = parser.parse_args(["generate", "--pipeline", "landmark", "--paper", "--seed", "3", "--audio", "a.wav",
                               "-o", "x.mp4"])
    assert cli._sampling(paper, "landmark") == PAPER_SETTINGS["landmark"].updated(seed=3)
