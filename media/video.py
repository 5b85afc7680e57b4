"""Writing H.264/AAC mp4 files atomically, and streaming frames and facts out of existing videos."""

import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from ..errors import AudioError, VideoError
from ._ffmpeg import input_streams, last_error_line, run_ffmpeg
from .audio import SAMPLE_RATE

SYNTHETIC_DESCRIPTION = (
    "Synthetic (AI-generated) talking-head video made with talking-head-diffusion; not a real recording"
)


class VideoWriter:
    """Streams RGB frames into an mp4 (H.264, yuv420p) and, on close, adds AAC audio and provenance tags.

    Frames go to a hidden temporary file next to `path`; `close()` muxes in the audio (cut or padded with
    silence to the video's length), writes the tags `comment` ("synthetic=true; key=value; ...") and
    `description`, then moves the result to `path` in one step. If the `with` block raises, or `abort()`
    is called, the temporary files are deleted and nothing appears at `path`.

    Give the audio either as a file (`audio_path`) or as a mono float `waveform` at `sample_rate`.
    `metadata` (e.g. {"model": "org/name"}) is recorded in the tags. For audio and video to end together,
    write round(audio seconds * fps) frames.
    """

    def __init__(
        self,
        path,
        fps: float = 25.0,
        audio_path=None,
        waveform: np.ndarray | None = None,
        sample_rate: int = SAMPLE_RATE,
        metadata: dict | None = None,
        crf: int = 18,
    ):
        if audio_path is not None and waveform is not None:
            raise ValueError("Give the audio either as audio_path or as waveform, not both")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise VideoError(f"Cannot write {self.path}: the folder {self.path.parent} does not exist")
        if audio_path is not None and not Path(audio_path).is_file():
            raise AudioError(f"Audio file not found: {audio_path}")
        self.fps = float(fps)
        self.audio_path = audio_path
        self.waveform = None if waveform is None else np.asarray(waveform, dtype="<f4")
        if self.waveform is not None and self.waveform.ndim != 1:
            raise ValueError(f"waveform must be mono with shape [num_samples], got shape {self.waveform.shape}")
        self.sample_rate = sample_rate
        self.metadata = dict(metadata or {})
        self.crf = crf
        self.num_frames = 0
        self._frame_shape = None
        self._encoder = None
        self._temp_paths = []
        self._closed = False
        self._video_temp_path = self._new_temp_path("partial")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if exc_type is None and not self._closed:
            self.close()
        else:
            self.abort()

    def write(self, frames: np.ndarray) -> None:
        """Append one uint8 frame [H, W, 3] or a batch [B, H, W, 3]; all frames must have the same size."""
        self._check_open()
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"Frames must be uint8 arrays [H, W, 3] or [B, H, W, 3], got {frames.dtype} {frames.shape}"
            )
        if self._encoder is None:
            self._start_encoder(frames.shape[1:])
        elif frames.shape[1:] != self._frame_shape:
            raise ValueError(f"Frame size changed from {self._frame_shape} to {frames.shape[1:]}")
        try:
            self._encoder.send(np.ascontiguousarray(frames))
        except OSError as err:
            raise VideoError(f"ffmpeg stopped while encoding {self.path}: {err}") from err
        self.num_frames += len(frames)

    def close(self) -> Path:
        """Finish encoding, add audio and tags, and move the video into place; returns its path."""
        self._check_open()
        try:
            if self.num_frames == 0:
                raise VideoError(f"No frames were written, so {self.path} was not created")
            self._stop_encoder()
            muxed_path = self._new_temp_path("muxing")
            self._mux(muxed_path)
            os.replace(muxed_path, self.path)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Stop encoding and delete all temporary files; nothing is written to `path`."""
        try:
            self._stop_encoder()
        finally:  # even when the encoder died with the run (a signal reaches the whole process group)
            for temp_path in self._temp_paths:
                temp_path.unlink(missing_ok=True)
            self._temp_paths = []
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"The VideoWriter for {self.path} is already closed")

    def _new_temp_path(self, role: str) -> Path:
        # ffmpeg creates the file itself, so it gets the usual permissions (mkstemp's would be owner-only).
        temp_path = self.path.parent / f".{self.path.name}.{role}-{secrets.token_hex(4)}.mp4"
        self._temp_paths.append(temp_path)
        return temp_path

    def _start_encoder(self, frame_shape: tuple) -> None:
        height, width = frame_shape[:2]
        output_params = ["-crf", str(self.crf)]
        if height % 2 or width % 2:  # yuv420p needs even sizes: add one black row / column
            output_params += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        self._encoder = imageio_ffmpeg.write_frames(
            str(self._video_temp_path),
            (width, height),
            fps=self.fps,
            codec="libx264",
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=output_params,
        )
        self._encoder.send(None)
        self._frame_shape = tuple(frame_shape)

    def _stop_encoder(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None

    def _mux(self, muxed_path: Path) -> None:
        args = ["-i", str(self._video_temp_path)]
        audio_bytes = None
        if self.audio_path is not None:
            args += ["-i", str(self.audio_path)]
        elif self.waveform is not None:
            args += ["-f", "f32le", "-ar", str(self.sample_rate), "-ac", "1", "-i", "pipe:0"]
            audio_bytes = self.waveform.tobytes()
        args += ["-map", "0:v:0", "-c:v", "copy"]
        if self.audio_path is not None or self.waveform is not None:
            # apad extends short audio with silence; -t then cuts everything to the video's length.
            args += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "128k", "-af", "apad"]
        args += ["-t", f"{self.num_frames / self.fps:.6f}"]
        for key, value in self._tags().items():
            args += ["-metadata", f"{key}={value}"]
        args += ["-movflags", "+faststart", "-f", "mp4", "-y", str(muxed_path)]
        result = run_ffmpeg(args, stdin_bytes=audio_bytes)
        if result.returncode != 0 and "matches no streams" in result.stderr:
            raise AudioError(f"{self.audio_path} has no audio stream to put into {self.path}")
        if result.returncode != 0:
            raise VideoError(
                f"Could not finish {self.path} (adding audio and tags failed): {last_error_line(result.stderr)}"
            )

    def _tags(self) -> dict:
        pairs = {"synthetic": "true"}
        pairs.update((str(key), str(value)) for key, value in self.metadata.items() if key != "synthetic")
        comment = "; ".join(f"{key}={value}" for key, value in pairs.items())
        description = SYNTHETIC_DESCRIPTION
        if "model" in self.metadata:
            description += f" (model: {self.metadata['model']})"
        return {"comment": " ".join(comment.split()), "description": description}


def soundtrack(audio, waveform: np.ndarray, sample_rate: int) -> dict:
    """VideoWriter's audio arguments for a result made from `audio`: the user's own file as it was given (its
    sample rate and channels, trimmed to the video) when `audio` is a path, else the waveform the models heard."""
    if isinstance(audio, (str, os.PathLike)):
        return {"audio_path": audio}
    return {"waveform": waveform, "sample_rate": sample_rate}


def read_video_frames(path, size: tuple[int, int] | None = None, fps: float | None = None, batch: int = 32):
    """Iterator over the frames of a video as uint8 RGB arrays [B, H, W, 3], `batch` at a time.

    `size` = (width, height) rescales the frames and `fps` resamples the frame rate (both done by ffmpeg).
    Only one batch is held in memory, whatever the video's length. Raises VideoError at once for a
    missing or unreadable file.
    """
    _read_video_header(path)
    return _frame_batches(path, size, fps, batch)


def frames_in_order(path, order: np.ndarray, batch: int = 16) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The frames of a video in `order` (indices [M] into its frames), as (indices [B], uint8 frames [B,H,W,3])
    batches. An increasing order streams the file; any other (a video played forward and backward) first copies the
    frames into a temporary file, so memory does not grow with the video's length either way."""
    order = np.asarray(order, int)
    if np.all(np.diff(order) > 0):
        yield from _increasing_frames(path, order, batch)
        return
    with tempfile.TemporaryDirectory(prefix="talking_head_frames_") as folder:
        stored = None
        count = 0
        for frames in read_video_frames(path):
            if stored is None:
                stored = np.lib.format.open_memmap(Path(folder) / "frames.npy", mode="w+", dtype=np.uint8,
                                                   shape=(order.max() + 1, *frames.shape[1:]))
            take = frames[:len(stored) - count]
            stored[count:count + len(take)] = take
            count += len(take)
            if count == len(stored):
                break
        for start in range(0, len(order), batch):
            indices = order[start:start + batch]
            yield indices, np.array(stored[indices])
        del stored


def _increasing_frames(path, order: np.ndarray, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    wanted, indices, frames, position = 0, [], [], 0
    for decoded in read_video_frames(path):
        for frame in decoded:
            if wanted < len(order) and order[wanted] == position:
                indices.append(position)
                frames.append(frame)
                wanted += 1
                if len(frames) == batch:
                    yield np.array(indices), np.stack(frames)
                    indices, frames = [], []
            position += 1
        if wanted == len(order):
            break
    if frames:
        yield np.array(indices), np.stack(frames)


def _frame_batches(path, size, fps, batch):
    filters = ([f"fps={fps}"] if fps else []) + ([f"scale={size[0]}:{size[1]}"] if size else [])
    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-vf", ",".join(filters)] if filters else None)
    try:
        width, height = next(reader)["size"]
        frames = []
        for raw_frame in reader:
            frames.append(np.frombuffer(raw_frame, dtype=np.uint8).reshape(height, width, 3))
            if len(frames) == batch:
                yield np.stack(frames)
                frames = []
        if frames:
            yield np.stack(frames)
    except (OSError, RuntimeError) as err:
        raise VideoError(f"Could not read the frames of {path}: {err}") from err
    finally:
        reader.close()


def probe_video(path) -> dict:
    """Facts about a video: fps, num_frames, width, height, duration (seconds) and has_audio."""
    stderr = _read_video_header(path, count_frames=True)
    streams = input_streams(stderr)
    video_line = next(rest for kind, _, rest in streams if kind == "Video")
    width, height = map(int, re.search(r"(?<!\w)(\d+)x(\d+)(?=[ ,])", video_line).groups())
    rate = re.search(r"([\d.]+)(k?) fps", video_line) or re.search(r"([\d.]+)(k?) tbr", video_line)
    fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    num_frames = int(re.findall(r"frame=\s*(\d+)", stderr)[-1])
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", stderr)
    if duration:
        hours, minutes, seconds = duration.groups()
        seconds = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    else:
        seconds = num_frames / fps
    return {
        "fps": fps,
        "num_frames": num_frames,
        "width": width,
        "height": height,
        "duration": seconds,
        "has_audio": any(kind == "Audio" for kind, _, _ in streams),
    }


def read_metadata(path) -> dict:
    """The container's global tags (e.g. "comment", "description", "encoder") as a dict of strings."""
    _read_video_header(path)
    result = run_ffmpeg(["-i", str(path), "-f", "ffmetadata", "-"])
    if result.returncode != 0:
        raise VideoError(f"Could not read the metadata of {path}: {last_error_line(result.stderr)}")
    return _parse_ffmetadata(result.stdout.decode("utf-8", errors="replace"))


def _read_video_header(path, count_frames: bool = False) -> str:
    """ffmpeg's description of `path` (and its frame count if asked); VideoError if it is not a readable video."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"Video file not found: {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"Video file is empty (0 bytes): {path}")
    args = ["-i", str(path)]
    if count_frames:  # copying the stream counts its frames without decoding them
        args += ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    result = run_ffmpeg(args)
    if not any(kind == "Video" for kind, _, _ in input_streams(result.stderr)):
        if "Input #0" in result.stderr:
            raise VideoError(f"{path} has no video stream")
        raise VideoError(
            f"{path} could not be read: it is corrupt or not a video ffmpeg can read "
            f"(ffmpeg: {last_error_line(result.stderr)})"
        )
    if count_frames and result.returncode != 0:
        raise VideoError(f"Could not count the frames of {path}: {last_error_line(result.stderr)}")
    return result.stderr


def _parse_ffmetadata(text: str) -> dict:
    """Global `key=value` tags of an ffmetadata file, undoing its backslash escapes."""
    tags = {}
    key, field, escaped = None, [], False
    for char in text + "\n":
        if escaped:
            field.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "=" and key is None:
            key, field = "".join(field), []
        elif char == "\n":
            if key is None and "".join(field).startswith("["):
                break  # [STREAM] / [CHAPTER] sections follow the global tags
            if key is not None:
                tags[key] = "".join(field)
            key, field = None, []
        else:
            field.append(char)
    return tags


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 frames [B,H,W,3] to [B,size,size,3] (bicubic, antialiased when shrinking)."""
    import torch
    from torch.nn import functional as F

    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    resized = F.interpolate(images, size=(size, size), mode="bicubic", antialias=size < frames.shape[1])
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
