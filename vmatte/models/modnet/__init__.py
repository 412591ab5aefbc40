"""MODNet portrait matting: network, official checkpoint loading and the official inference pre-processing."""

from .inference import inference_size, predict_matte
from .modnet import MODNet
from .weights import load_modnet, load_modnet_weights, strip_data_parallel_prefix

__all__ = ["MODNet", "inference_size", "load_modnet", "load_modnet_weights", "predict_matte",
           "strip_data_parallel_prefix"]
