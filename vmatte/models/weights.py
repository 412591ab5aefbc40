"""Known model files: where they come from, where vmatte looks for them, and how they are fetched.

Lookup order for a model: an explicit ``--weights`` path, then each folder in ``VMATTE_WEIGHTS`` (a path
list), then the user cache (``$VMATTE_HOME``, else ``$XDG_CACHE_HOME/vmatte``, else ``~/.cache/vmatte``),
then a download from the official URL into the cache, with a progress bar and a checksum check where the
checksum is known. ``VMATTE_OFFLINE=1`` turns downloads off.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from ..errors import VmatteError

RVM_RELEASE = "https://github.com/PeterL1n/RobustVideoMatting/releases/download/v1.0.0/"
GOOGLE_DRIVE = "https://drive.google.com/uc?export=download&id="


@dataclass(frozen=True)
class KnownModel:
    name: str
    family: str  # "rvm" or "modnet"
    filename: str  # the file (or, for an unpacked archive, the folder) looked for on disk
    url: str
    sha256: str | None  # of the downloaded file; None where no official checksum is published
    description: str
    # For an archive: the files it unpacks to, with their sha256 (checked after unpacking).
    unpacked: tuple[tuple[str, str], ...] = ()


MODELS: dict[str, KnownModel] = {m.name: m for m in (
    KnownModel("rvm-mobilenetv3", "rvm", "rvm_mobilenetv3.pth", RVM_RELEASE + "rvm_mobilenetv3.pth", None,
               "RVM MobileNetV3 (official PyTorch release, fp32, deep guided filter); the default"),
    KnownModel("rvm-mobilenetv3-onnx", "rvm", "rvm_mobilenetv3_fp32.onnx", RVM_RELEASE + "rvm_mobilenetv3_fp32.onnx",
               "88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828",
               "RVM MobileNetV3, official ONNX release (fp32, deep guided filter): the default's weights"),
    KnownModel("rvm-resnet50", "rvm", "rvm_resnet50.pth", RVM_RELEASE + "rvm_resnet50.pth", None,
               "RVM ResNet-50 (official PyTorch release): slower, finer edges"),
    KnownModel("rvm-mobilenetv3-int8", "rvm", "rvm_mobilenetv3_tfjs_int8",
               RVM_RELEASE + "rvm_mobilenetv3_tfjs_int8.zip", None,
               "RVM MobileNetV3, official TensorFlow.js uint8 export (fast guided filter)",
               unpacked=(
                   ("model.json", "de775ec299d64361c26b643c72800da6f7b949fc0f16b56545d8145b92d2decf"),
                   ("group1-shard1of1.bin", "64cf47fe743d510c2e1c5114af76c994d67e342a94bbc51a6ef9eaffbf4c8f90"),
               )),
    KnownModel("modnet-photographic", "modnet", "modnet_photographic_portrait_matting.ckpt",
               GOOGLE_DRIVE + "1mcr7ALciuAsHCpLnrtG_eop5-EYhbCmz",
               "7c22235f0925deba15d4d63e53afcb654c47055bbcd98f56e393ab2584007ed8",
               "MODNet, official photographic portrait checkpoint (frame by frame; OFD smoothing)"),
    KnownModel("modnet-webcam", "modnet", "modnet_webcam_portrait_matting.ckpt",
               GOOGLE_DRIVE + "1Nf1ZxeJZJL8Qx9KadcYYyEmmlKhTADxX",
               "913b82b66558db39b6286c150f809017d7528c872b156eb14333c9c6cb52108b",
               "MODNet, official webcam portrait checkpoint (frame by frame; OFD smoothing)"),
)}
DEFAULT_MODEL = "rvm-mobilenetv3"
# The same float32 weights in another official file: used where it is at hand, before anything is downloaded.
SAME_WEIGHTS = {"rvm-mobilenetv3": "rvm-mobilenetv3-onnx"}
# When none of those can be found or fetched, the int8 export (same network, quantised weights) stands in.
FALLBACKS = {"rvm-mobilenetv3": "rvm-mobilenetv3-int8"}


# How the files --weights takes begin: a PyTorch archive or a TF.js export's .zip (zip), a legacy PyTorch pickle
# (protocol marker), an ONNX model (protobuf field 1, ir_version, varint).
WEIGHT_FILE_STARTS = (b"PK\x03\x04", b"\x80", b"\x08")
WEIGHT_FILES = "a PyTorch .pth/.ckpt, an official .onnx, or the TF.js export (its folder, model.json or .zip)"


def check_weight_file(path: Path) -> None:
    """Says at once, without PyTorch, when a --weights path cannot be weights: missing, unreadable, or some other
    kind of file (a video); the loaders find what is wrong inside a file that starts right."""
    path = Path(path)
    if path.is_dir():
        if not (path / "model.json").is_file():
            raise VmatteError(f"{path}: a folder without model.json, so not weights ({WEIGHT_FILES})")
        return
    try:
        with open(path, "rb") as file:
            start = file.read(4)
    except FileNotFoundError:
        raise VmatteError(f"{path}: weight file not found") from None
    except OSError as exc:
        raise VmatteError(f"{path}: cannot read the weight file ({exc.strerror})") from None
    if path.name != "model.json" and not start.startswith(WEIGHT_FILE_STARTS):
        raise VmatteError(f"{path}: not a weight file; --weights takes {WEIGHT_FILES}")


def cache_dir() -> Path:
    if home := os.environ.get("VMATTE_HOME"):
        return Path(home)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vmatte"


def search_dirs() -> list[Path]:
    folders = [Path(p) for p in os.environ.get("VMATTE_WEIGHTS", "").split(os.pathsep) if p]
    return folders + [cache_dir()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def network_code_digest() -> str:
    """The network's source (this package): a cache built from the old code must not serve a changed layer."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def verify(model: KnownModel, path: Path) -> None:
    """Checks a found file (or unpacked folder) against the known checksums, naming the file on mismatch."""
    checks = [(path / name, digest) for name, digest in model.unpacked] if model.unpacked else [(path, model.sha256)]
    for file, expected in checks:
        if expected is None:
            continue
        if not file.is_file():
            raise VmatteError(f"{file}: missing (part of {model.name})")
        if (actual := sha256_of(file)) != expected:
            raise VmatteError(f"{file}: checksum mismatch for {model.name} (sha256 {actual[:16]}..., expected "
                              f"{expected[:16]}...): the file is damaged or not the official one; delete it and "
                              f"fetch it again")


def find_local(model: KnownModel) -> Path | None:
    for folder in search_dirs():
        candidate = folder / model.filename
        if candidate.exists():
            verify(model, candidate)
            return candidate
    return None


def offline() -> bool:
    return os.environ.get("VMATTE_OFFLINE", "").lower() in ("1", "true", "yes")


def download(model: KnownModel, quiet: bool = False) -> Path:
    """Fetches a model into the cache (via a temporary file, so a broken download never looks finished)."""
    target = cache_dir() / model.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        part = Path(tmp) / Path(model.url).name
        with urllib.request.urlopen(model.url, timeout=30) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with Progress(TextColumn(f"Downloading {model.name}"), BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), disable=quiet) as progress:
                task = progress.add_task("download", total=total)
                while block := response.read(1 << 16):
                    out.write(block)
                    progress.advance(task, len(block))
        if model.sha256 is not None and (actual := sha256_of(part)) != model.sha256:
            raise VmatteError(f"downloaded {model.name} from {model.url} but its sha256 is {actual}, expected "
                              f"{model.sha256}; not used")
        if model.unpacked:
            with zipfile.ZipFile(part) as archive:
                archive.extractall(tmp)
            found = next(Path(tmp).rglob(model.unpacked[0][0])).parent
            verify(model, found)
            shutil.move(str(found), target)
        else:
            os.replace(part, target)
    return target


def missing_message(model: KnownModel) -> str:
    folders = ", ".join(str(p) for p in search_dirs())
    return (f"model {model.name} not found: download {model.url} and put {model.filename} in {cache_dir()} "
            f"(or in a folder listed in VMATTE_WEIGHTS; searched: {folders}), or pass --weights PATH")


def resolve(name: str, *, allow_download: bool = True, quiet: bool = False,
            notice=print) -> tuple[KnownModel, Path]:
    """Finds (or fetches) the named model's file: its own file, then the same weights in another format
    (``SAME_WEIGHTS``), then a download, then ``FALLBACKS``; a stand-in is told to ``notice``."""
    if name not in MODELS:
        raise VmatteError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    model = MODELS[name]
    if path := find_local(model):
        return model, path
    if (same := SAME_WEIGHTS.get(name)) and (path := find_local(MODELS[same])):
        return MODELS[same], path  # the run's model line names it
    error = None
    if allow_download and not offline():
        try:
            return model, download(model, quiet)
        except VmatteError:
            raise
        except (OSError, zipfile.BadZipFile) as exc:  # urllib's URLError is an OSError
            error = exc
    fallback = FALLBACKS.get(name)
    if fallback and (path := find_local(MODELS[fallback])):
        notice(f"{model.filename} is not available here; using {fallback} ({path}) instead")
        return MODELS[fallback], path
    reason = f" (download failed: {error})" if error else ""
    raise VmatteError(missing_message(model) + reason)
