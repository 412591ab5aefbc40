"""Shared test fixtures.

Real footage, golden outputs and weights live in ``../shared`` (beside the checkout, never copied into
the repo). Tests that need it skip when it is absent, except in CI (``CI=true``) where that is a failure.
"""

import os
from pathlib import Path

import media
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VMATTE_SHARED", REPO.parent / "shared"))


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"{path} is missing (tests need ../shared beside the checkout)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def samples_dir(shared_dir) -> Path:
    return _require(shared_dir / "samples")


@pytest.fixture(scope="session")
def golden_dir(shared_dir) -> Path:
    return _require(shared_dir / "golden")


@pytest.fixture(scope="session")
def weights_dir(shared_dir) -> Path:
    return _require(shared_dir / "weights")


@pytest.fixture(scope="session")
def compiled_cache(tmp_path_factory) -> Path:
    """One cache of compiled models for the session, so tests of the same shape share a build."""
    return tmp_path_factory.mktemp("compiled")


@pytest.fixture(autouse=True, scope="module")
def offline_env():
    """Every test module runs as CI does: weights from ../shared, and nothing downloaded."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in media.offline_env().items():
            patch.setenv(name, value)
        yield
