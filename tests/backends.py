"""The inference backends tests run on: PyTorch, and each compiled backend whose package is installed here
(in CI every one must be)."""

import importlib.util
import os

import pytest


def _needs(backend: str, package: str):
    if importlib.util.find_spec(package) or os.environ.get("CI", "").lower() == "true":
        return backend
    return pytest.param(backend, marks=pytest.mark.skip(reason=f"the {package} package is not installed"))


BACKENDS = ["torch", _needs("openvino", "openvino")]
