"""The networks (one file per part, as the RVM authors laid theirs out), their weight formats and files.

Nothing is imported here, so the weight table (``weights.py``) can be read without loading PyTorch.
"""
