"""The names of the audio front ends and of the speech models' hidden states they take, importable without torch
(the command line lists them)."""

KINDS = ("logmel", "wav2vec2", "hubert", "whisper")
# Which of a speech model's hidden states make the features: its output, the mean of its layers' outputs, or all of
# them side by side.
LAYERS = ("last", "mean", "all")
