"""Audio decoding, per-frame audio features and video reading/writing through the ffmpeg binary."""
