"""Running the ffmpeg binary bundled with imageio-ffmpeg and reading what it prints about its inputs."""

import re
import subprocess
from functools import lru_cache

import imageio_ffmpeg

_STREAM_LINE = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio|Subtitle|Data): (\w+)(.*)$", re.MULTILINE)
_INPUT_LINE = re.compile(r"^Input #0, (.+?), from ", re.MULTILINE)


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], stdin_bytes: bytes | None = None) -> subprocess.CompletedProcess:
    """Run ffmpeg with `args`, feeding `stdin_bytes` if given; stdout is bytes, stderr is text."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostats"]
    if stdin_bytes is None:
        command.append("-nostdin")
    result = subprocess.run(
        command + args,
        input=stdin_bytes,
        stdin=subprocess.DEVNULL if stdin_bytes is None else None,
        capture_output=True,
    )
    result.stderr = result.stderr.decode("utf-8", errors="replace")
    return result


def last_error_line(stderr: str) -> str:
    """The last non-empty line ffmpeg printed, which usually states why it failed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


def input_streams(stderr: str) -> list[tuple[str, str, str]]:
    """(kind, codec, rest of line) for each stream of input #0 in ffmpeg's header, e.g. ("Audio", "aac", ...)."""
    return _STREAM_LINE.findall(stderr)


def input_format(stderr: str) -> str:
    """Name of the demuxer ffmpeg chose for input #0 (e.g. "wav", "png_pipe"), or "" if it opened nothing."""
    match = _INPUT_LINE.search(stderr)
    return match.group(1) if match else ""
