"""Measuring generated talking-head video against real footage."""

# The metrics `talking-head evaluate` computes for generated videos (see videos.py): offline, and with network weights.
OFFLINE_METRICS = ("psnr", "ssim", "pixel_mse", "landmarks", "sync", "sharpness")
NETWORK_METRICS = ("lpips", "tlp", "lse", "fid", "mediapipe")
ALL_METRICS = OFFLINE_METRICS + NETWORK_METRICS
