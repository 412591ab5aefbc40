"""The networks (one file per part, as the RVM authors laid theirs out), their weight formats and files."""

from .loader import load_rvm, prepare_for_inference
from .matting_network import MattingNetwork, MattingOutput
from .weights import DEFAULT_MODEL, MODELS, resolve

__all__ = ["DEFAULT_MODEL", "MODELS", "MattingNetwork", "MattingOutput", "load_rvm", "prepare_for_inference",
           "resolve"]
