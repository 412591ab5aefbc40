"""vmatte: video matting for editors (Robust Video Matting and MODNet, clean-room PyTorch)."""

__version__ = "0.1.0"
