"""Errors the engine raises for bad input: one clear message that names the problem."""


class TalkingHeadError(Exception):
    """Base class: a problem with the user's input or models, with a message meant for people."""


class AudioError(TalkingHeadError):
    """The audio is missing, empty, silent, corrupt or in a format we cannot read."""


class VideoError(TalkingHeadError):
    """A video is missing, corrupt or cannot be written."""


class FaceError(TalkingHeadError):
    """No usable face was found where one is needed."""


class ModelError(TalkingHeadError):
    """A model folder or repo does not fit the pipeline that was asked to load it."""


class MetricWeightsError(TalkingHeadError):
    """A metric's network weights could not be had (download failed, no network, or a bad file)."""
