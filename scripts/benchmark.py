"""Where time and memory go in both pipelines and in dubbing: every stage timed, frames per second and peak memory, at
the paper's settings and faster ones, against the paper's procedure done naively (one frame at a time) in the same
run, and on several minutes of audio to show that memory stays flat as the video grows. Dubbing dubs a 512x512 video
(the address in assets/, enlarged) beside the landmark pipeline animating the 512x512 portrait with the same speech and
settings.

    python scripts/benchmark.py [--device cuda] [--pipeline dae] [--audio assets/librivox_0880.wav] [--long-minutes 3]
                                [--json FILE]

Each configuration runs in a process of its own, so the peak memory it reports is its own (resident set size on
the CPU; torch's peak allocation on a GPU, with bf16 weights). Prints a Markdown table.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PORTRAIT = ROOT / "assets" / "astronaut.jpg"
ADDRESS = ROOT / "assets" / "obama_head_motion.mp4"  # 256x256, 4 s; enlarged to 512x512 for the dubbing rows
DUB_SIZE = 512

PIPELINES = ("dae", "landmark", "dub")


def configurations(device: str, long_minutes: float, pipelines=PIPELINES) -> list[dict]:
    """The runs: (pipeline, steps, sampler, batch) at the paper's settings, naive, faster; and long inputs."""
    dtypes = ["float32"] + (["bfloat16"] if device == "cuda" else [])
    runs = []
    for dtype in dtypes:
        for pipeline, paper_steps in (("dae", 100), ("landmark", 200)):
            if pipeline not in pipelines:
                continue
            base = {"pipeline": pipeline, "device": device, "dtype": dtype}
            runs += [
                {**base, "name": "paper, naive (1 frame at a time)", "steps": paper_steps, "sampler": "ddim", "batch": 1,
                 "keep_frames": True},
                {**base, "name": "paper settings, batched", "steps": paper_steps, "sampler": "ddim", "batch": 16,
                 "keep_frames": True},
                {**base, "name": "faster: dpm++ 25 steps", "steps": 25, "sampler": "dpm++", "batch": 16, "keep_frames": True},
                {**base, "name": "faster: dpm++ 25 steps, batch 64", "steps": 25, "sampler": "dpm++", "batch": 64},
            ]
    if "dub" in pipelines:
        for dtype in dtypes:
            for pipeline, name in (("landmark", "portrait 512x512, dpm++ 15 steps"),
                                   ("dub", "video 512x512, dpm++ 15 steps")):
                runs.append({"pipeline": pipeline, "device": device, "dtype": dtype, "name": name, "steps": 15,
                             "sampler": "dpm++", "batch": 16})
    for pipeline in pipelines:
        for minutes in (0.2, long_minutes):
            runs.append({"pipeline": pipeline, "device": device, "dtype": dtypes[-1], "name": f"{minutes:g} min of audio",
                         "steps": 5, "sampler": "dpm++", "batch": 16, "minutes": minutes})
    return runs


def run_one(config: dict, audio: Path, frames_path: Path | None) -> dict:
    """Run one configuration in this process; returns its timings and peak memory."""
    import torch

    from talking_head.bundled import BUNDLED_MODELS, DAE_TALKER, LANDMARK_DIFFUSION
    from talking_head.media.audio import SAMPLE_RATE, load_audio
    from talking_head.media.video import VideoWriter

    device, dtype = torch.device(config["device"]), getattr(torch, config["dtype"])
    waveform = load_audio(audio)
    if "minutes" in config:
        waveform = np.resize(waveform, int(config["minutes"] * 60 * SAMPLE_RATE))
    timings, started = {}, time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal started
        if device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - started
        started = now

    if config["pipeline"] == "dae":
        from talking_head.pipelines.dae_talker import DAETalkerPipeline

        pipe = DAETalkerPipeline.from_pretrained(BUNDLED_MODELS[DAE_TALKER], torch_dtype=dtype).to(device)
        lap("load")
        features = pipe.feature_extractor(waveform, SAMPLE_RATE)
        lap("audio features")
        latents = pipe.speech_to_latents(features)
        lap("speech2latent + pose")
        batches = pipe.decode_latents(latents, pipe.initial_noise(0), config["steps"], config["sampler"], config["batch"])
        count = len(latents)
    elif config["pipeline"] == "dub":
        from talking_head.faces.tracking import ping_pong
        from talking_head.media.audio import num_video_frames
        from talking_head.media.video import frames_in_order, probe_video, read_video_frames
        from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

        pipe = LandmarkDiffusionPipeline.from_pretrained(BUNDLED_MODELS[LANDMARK_DIFFUSION], torch_dtype=dtype).to(device)
        lap("load")
        video, fps = config["video"], probe_video(config["video"])["fps"]
        track = pipe.track_face(read_video_frames(video), fps)
        lap("face")
        features, voice = pipe.encode_audio(waveform)
        lap("audio features")
        count = num_video_frames(len(waveform), SAMPLE_RATE, fps)
        order = np.arange(count) if count <= len(track) else ping_pong(len(track), count)
        targets = pipe.dubbed_landmarks(track, order, features, voice, fps)
        lap("A2L")
        reference, noise = track.reference_face(pipe.image_size), pipe.initial_noise(0)
        batches = (pipe.dub_frames(frames, track.landmarks[indices], targets[start:start + len(indices)],
                                   track.boxes[indices], reference, noise, config["steps"], config["sampler"])
                   for start, (indices, frames) in zip(range(0, count, config["batch"]),
                                                        frames_in_order(video, order, config["batch"])))
    else:
        from talking_head.faces.paste import paste_back
        from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

        pipe = LandmarkDiffusionPipeline.from_pretrained(BUNDLED_MODELS[LANDMARK_DIFFUSION], torch_dtype=dtype).to(device)
        lap("load")
        face = pipe.find_face(PORTRAIT)
        lap("face")
        features, voice = pipe.encode_audio(waveform)
        lap("audio features")
        landmarks = pipe.audio_to_landmarks(features, voice, face.crop_landmarks)
        lap("A2L")
        still = pipe.still_head(len(landmarks))
        batches = pipe.generate_crops(face, landmarks, still, pipe.initial_noise(0), config["steps"], config["sampler"],
                                      config["batch"])
        count = len(landmarks)
    kept = []
    with tempfile.TemporaryDirectory() as folder, \
            VideoWriter(Path(folder) / "out.mp4", fps=pipe.fps, waveform=waveform) as writer:
        start = 0
        for batch in batches:
            lap("denoising")
            if config["pipeline"] == "landmark":
                stop = start + len(batch)
                batch = paste_back(face, batch, landmarks[start:stop], still[start:stop], refiner=pipe.mouth_refiner)
                start = stop
                lap("paste-back")
            if frames_path is not None:
                kept.append(batch)
            writer.write(batch)
            lap("video writing")
    lap("video writing")
    if frames_path is not None:
        np.save(frames_path, np.concatenate(kept))
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _peak_resident_bytes()
    generating = sum(seconds for stage, seconds in timings.items() if stage != "load")
    return {**config, "frames": count, "timings": timings, "fps": count / generating, "peak_mib": peak / 2**20}


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _peak_resident_bytes() -> int:
    """This process's peak resident memory. Linux's VmHWM starts afresh with the process; ru_maxrss would include
    the memory of the parent it was forked from."""
    status = Path("/proc/self/status")
    if status.exists():
        return int(status.read_text().split("VmHWM:")[1].split()[0]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 frame arrays, a frame at a time."""
    squared = sum(float(np.mean((x.astype(np.float32) - y.astype(np.float32)) ** 2)) for x, y in zip(a, b)) / len(a)
    return float(10 * np.log10(255**2 / max(squared, 1e-10)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--audio", default=str(ROOT / "assets" / "librivox_0880.wav"))
    parser.add_argument("--pipeline", action="append", choices=PIPELINES,
                        help="benchmark only this pipeline (repeat for both; default: both)")
    parser.add_argument("--long-minutes", type=float, default=3.0)
    parser.add_argument("--json", help="also write every result here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration (JSON) and print its result
    parser.add_argument("--frames", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one), Path(args.audio), Path(args.frames) if args.frames else None)))
        return
    results = []
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "address_512.mp4"
        subprocess.run([_ffmpeg(), "-v", "error", "-i", str(ADDRESS), "-vf", f"scale={DUB_SIZE}:{DUB_SIZE}",
                        "-c:v", "libx264", "-crf", "18", str(video)], check=True)
        for index, config in enumerate(configurations(args.device, args.long_minutes, args.pipeline or PIPELINES)):
            config["video"] = str(video)
            frames = Path(folder) / f"{index}.npy" if config.pop("keep_frames", False) else None
            command = [sys.executable, __file__, "--audio", args.audio, "--one", json.dumps(config)]
            command += ["--frames", str(frames)] if frames else []
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            naive = next((r for r in results if r["pipeline"] == config["pipeline"] and r["dtype"] == config["dtype"]
                          and r["name"].startswith("paper, naive")), None)
            if naive is not None and "minutes" not in config:
                result["speed_up"] = result["fps"] / naive["fps"]
                if frames is not None:
                    result["psnr_vs_naive_db"] = _psnr(np.load(frames), np.load(naive["frames_file"]))
            if frames is not None:
                result["frames_file"] = str(frames)
            results.append(result)
            print(f"{config['pipeline']:8} {config['name']:36} {result['fps']:7.2f} frames/s  "
                  f"{result['peak_mib']:7.0f} MiB", file=sys.stderr, flush=True)
    for result in results:
        result.pop("frames_file", None)
        result.pop("video", None)
    print(markdown_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def markdown_table(results: list[dict]) -> str:
    """The results as a Markdown table, one row per run."""
    stages = ["face", "audio features", "speech2latent + pose", "A2L", "denoising", "paste-back", "video writing"]
    # (dubbing: "face" is following the face through the video, "denoising" L2V and each frame's lower face)
    lines = ["| pipeline | run | dtype | steps | batch | frames | " + " | ".join(f"{stage} (s)" for stage in stages)
             + " | frames/s | peak MiB | speed-up vs naive | PSNR vs naive (dB) |",
             "|" + "---|" * (10 + len(stages))]
    for result in results:
        cells = [result["pipeline"], result["name"], result["dtype"], str(result["steps"]), str(result["batch"]),
                 str(result["frames"])]
        cells += [f"{result['timings'][stage]:.1f}" if stage in result["timings"] else "" for stage in stages]
        cells += [f"{result['fps']:.2f}", f"{result['peak_mib']:.0f}",
                  f"{result['speed_up']:.1f}x" if "speed_up" in result else "",
                  f"{result['psnr_vs_naive_db']:.1f}" if "psnr_vs_naive_db" in result else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
