"""Presets: named TOML files that set run options and output names, so a workflow is one word.

A preset file looks like this (every key but ``description`` and ``[outputs]`` is optional; an option
left out keeps its usual default)::

    description = "One line shown by 'vmatte presets'"

    model = "rvm-mobilenetv3"        # or a list: the first whose weights are here is used, else the last
    downsample_ratio = "auto"        # "auto", a number in (0, 1], or an internal long side such as "768px"
    precision = "auto"               # auto, fp32, fp16, bf16
    backend = "auto"                 # auto, torch, openvino
    device = "auto"                  # auto, cpu, cuda, mps
    semantics = "torch"              # torch (official PyTorch numerics) or tfjs (the TF.js export's)
    refiner = "auto"                 # auto (the weights' own), deep_guided_filter, fast_guided_filter
    chunk = 4                        # frames per model call, 1..64
    png_depth = 16                   # 8 or 16
    premultiplied = false
    background = "green"             # composite background: colour name, #rrggbb, image or video path
    skip_corrupt = false
    sequence_fps = "24000/1001"      # frame rate of image-sequence inputs (default 25)
    quality = "standard"             # fast, standard, best (see ensemble.py); explicit ratio/refiner win
    start = "2s"                     # range: frame number, seconds ("12.5s") or source timecode
    end = 250                        # exclusive; same forms
    number_from = "source"           # image-sequence outputs numbered by source frame, "timecode" or from "1001"
    exr_display_encoded = false      # OpenEXR colour linearised (default) or as the source encodes it

    [outputs]                        # kind = template; kinds: alpha, fgr, comp
    alpha = "{stem}.alpha.mov"
    comp = "{stem}_comp/%06d.png"

Templates name each output relative to the output folder: ``{stem}`` is the input's file name without its
extension, ``{name}`` with it. The extension picks the format as for --out/--fgr/--comp: .mov (ProRes
4444), .mp4 (H.264 preview, comp only), ``folder/`` or ``folder/%06d.png`` (PNG sequence).

Option keys are the ``JobSettings`` field names. ``weights`` (a path on one machine), ``overwrite`` and
``fresh`` (decisions for one run) are deliberately not preset options. Presets are looked up by name in the user's
``presets`` folder (``$VMATTE_HOME/presets``, else ``~/.cache/vmatte/presets``) and then in the presets
shipped with vmatte, so a user file can replace a shipped preset of the same name; a path ending in
``.toml`` is read directly.
"""

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import vmatte

from .errors import VmatteError
from .io import probe
from .io.clip_range import POSITION_FORMS, check_position
from .io.sequence import is_pattern, sequence_name
from .models.weights import MODELS, cache_dir, find_local
from .settings import (
    BACKENDS,
    OUTPUT_KINDS,
    PRECISION_NAMES,
    QUALITIES,
    SEMANTICS_NAMES,
    JobSettings,
    check_number_from,
)

BUNDLED_DIR = Path(vmatte.__file__).resolve().parent.parent / "presets"
TEMPLATE_FIELDS = ("stem", "name")
# What a run writes when no output is asked for: the matte beside the clip (as the prores-alpha preset names it).
DEFAULT_OUTPUTS = {"alpha": "{stem}.alpha.mov"}


def user_presets_dir() -> Path:
    return cache_dir() / "presets"


def search_dirs() -> list[Path]:
    """Where preset names are looked up, first match wins."""
    return [user_presets_dir(), BUNDLED_DIR]


@dataclass(frozen=True)
class TargetLongSide:
    """A downsample ratio given as the internal long side in pixels ("768px"); resolved per clip."""

    pixels: int

    def ratio_for(self, width: int, height: int) -> float:
        return min(1.0, self.pixels / max(width, height))  # never upsample


DownsampleRatio = float | TargetLongSide | None  # None: auto


RATIO_FORMS = "'auto', a number in (0, 1], or an internal long side such as '768px'"


def parse_downsample_ratio(value: object) -> DownsampleRatio:
    """'auto', a number in (0, 1] (as text or number), or a long side such as '768px'."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return None
        if match := re.fullmatch(r"(\d+)\s*px", text):
            if int(match.group(1)) < 16:
                raise VmatteError(f"downsample_ratio {value!r}: the long side must be at least 16 px")
            return TargetLongSide(int(match.group(1)))
        try:
            value = float(text)
        except ValueError:
            raise VmatteError(f"downsample_ratio {value!r}: give {RATIO_FORMS}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise VmatteError(f"downsample_ratio {value!r}: give {RATIO_FORMS}")
    return float(value)


# NTSC-family rates, which people write as decimals (23.976, 29.97, 59.94).
NTSC_RATES = tuple(Fraction(rate * 1000, 1001) for rate in (24, 30, 48, 60, 120))
FRAME_RATE_FORMS = "a frame rate such as 24, 23.976 or 24000/1001"


def parse_frame_rate(value: object) -> Fraction:
    """An exact frame rate from 24, 25.0, "23.976" (read as 24000/1001) or "30000/1001"."""
    try:
        if isinstance(value, bool):
            raise ValueError
        rate = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise VmatteError(f"frame rate {value!r}: give {FRAME_RATE_FORMS}") from None
    if not 0 < rate <= 1000:
        raise VmatteError(f"frame rate {value!r}: give {FRAME_RATE_FORMS}")
    near = [ntsc for ntsc in NTSC_RATES if abs(rate - ntsc) < Fraction(1, 200)]
    return near[0] if near else rate


# Value parsers for OPTIONS: each returns the JobSettings value, or raises ValueError for a wrong value.
def _one_of(*choices) -> Callable[[object], object]:
    def parse(value):
        if isinstance(value, bool) or value not in choices:
            raise ValueError
        return value
    return parse


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError
    return value


def _text(value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value


def _chunk(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise ValueError
    return value


def _model(value):
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in MODELS for n in names):
        raise ValueError
    return value if isinstance(value, str) else tuple(names)


def _refiner(value):
    return None if _one_of("auto", "deep_guided_filter", "fast_guided_filter")(value) == "auto" else value


# Option key -> (what a valid value looks like, parser).
OPTIONS: dict[str, tuple[str, Callable[[object], object]]] = {
    "model": (f"a model name or a list of them ({', '.join(MODELS)})", _model),
    "downsample_ratio": (RATIO_FORMS, parse_downsample_ratio),
    "precision": (f"one of auto, {', '.join(PRECISION_NAMES)}", _one_of("auto", *PRECISION_NAMES)),
    "device": ("one of auto, cpu, cuda, mps", _one_of("auto", "cpu", "cuda", "mps")),
    "backend": (f"one of {', '.join(BACKENDS)}", _one_of(*BACKENDS)),
    "semantics": (f"one of {', '.join(SEMANTICS_NAMES)}", _one_of(*SEMANTICS_NAMES)),
    "refiner": ("one of auto, deep_guided_filter, fast_guided_filter", _refiner),
    "chunk": ("a whole number from 1 to 64", _chunk),
    "png_depth": ("8 or 16", _one_of(8, 16)),
    "premultiplied": ("true or false", _boolean),
    "background": ("a colour name, #rrggbb, or an image or video path", _text),
    "skip_corrupt": ("true or false", _boolean),
    "sequence_fps": (FRAME_RATE_FORMS, parse_frame_rate),
    "quality": (f"one of {', '.join(QUALITIES)}", _one_of(*QUALITIES)),
    "start": (POSITION_FORMS, lambda value: check_position("start", value)),
    "end": (POSITION_FORMS + ", exclusive", lambda value: check_position("end", value)),
    "number_from": ("source, timecode or a first frame number", check_number_from),
    "exr_display_encoded": ("true or false", _boolean),
}
TOP_LEVEL_KEYS = ("description", "outputs", *OPTIONS)


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str
    outputs: dict[str, str]  # kind -> output template
    options: dict[str, object] = field(default_factory=dict)  # JobSettings field -> value ("model" may be a tuple)

    def apply(self, overrides: Mapping[str, object] | None = None) -> dict[str, object]:
        """JobSettings keyword arguments (all but input and outputs): this preset's options, then
        ``overrides``. Pass only the options the user gave: a key that is present wins even when its value is
        None (``downsample_ratio=None`` is an explicit 'auto')."""
        options = {**self.options, **(overrides or {})}
        if isinstance(options.get("model"), tuple):
            options["model"] = first_available_model(options["model"])
        return options


def first_available_model(names: tuple[str, ...]) -> str:
    """The first model whose weights are on this machine; else the last, which is then fetched (or falls back)
    as usual, so the list should end with the most widely available model."""
    return next((name for name in names if find_local(MODELS[name])), names[-1])


def load_preset(name_or_path: str | Path) -> Preset:
    text = str(name_or_path)
    if text.endswith(".toml"):
        path = Path(text)
        if not path.is_file():
            raise VmatteError(f"preset file {path} not found")
        return _read(path)
    files = _preset_files()
    if text not in files:
        folders = ", ".join(str(p) for p in search_dirs())
        raise VmatteError(f"unknown preset {text!r}; available presets: {', '.join(files) or 'none'} "
                          f"(searched {folders})")
    return _read(files[text])


def list_presets() -> list[tuple[str, str, Path]]:
    """(name, description, path) of every preset a name can reach, sorted by name."""
    return [(name, _read(path).description, path) for name, path in _preset_files().items()]


def _preset_files() -> dict[str, Path]:
    """Preset name -> file, sorted by name; a user file hides a shipped one of the same name."""
    found: dict[str, Path] = {}
    for folder in reversed(search_dirs()):
        if folder.is_dir():
            found.update({path.stem: path for path in folder.glob("*.toml") if not path.name.startswith(".")})
    return dict(sorted(found.items()))


def _read(path: Path) -> Preset:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VmatteError(f"preset {path}: cannot read it ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line L, column C)"
        raise VmatteError(f"preset {path}: not valid TOML: {exc}") from None

    def error_at(table: str | None, key: str, problem: str) -> VmatteError:
        line = _line_of(text, table, key)
        where = f"{path}, line {line}" if line else str(path)
        return VmatteError(f"preset {where}: {problem}")

    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise error_at(None, key, f"unknown key {key!r}; allowed keys: {', '.join(TOP_LEVEL_KEYS)}")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise error_at(None, "description", "needs a description = \"...\" line (shown by 'vmatte presets')")
    outputs = data.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise error_at(None, "outputs", f"needs an [outputs] table with at least one of {', '.join(OUTPUT_KINDS)}")
    for kind, template in outputs.items():
        if kind not in OUTPUT_KINDS:
            raise error_at("outputs", kind, f"unknown output kind {kind!r} in [outputs]; allowed keys: "
                                            f"{', '.join(OUTPUT_KINDS)}")
        try:
            check_template(template)
        except VmatteError as exc:
            raise error_at("outputs", kind, f"outputs.{kind}: {exc}") from None
    options = {}
    for key, (expected, parse) in OPTIONS.items():
        if key in data:
            try:
                options[key] = parse(data[key])
            except (ValueError, VmatteError):
                raise error_at(None, key, f"{key} = {data[key]!r} is not valid: expected {expected}") from None
    return Preset(path.stem, path, description.strip(), dict(outputs), options)


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """1-based line where ``key`` is set (or its ``[key]`` table opens) inside ``table`` (None: top level)."""
    quoted_key = rf"""(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')"""
    key_line = re.compile(rf"\s*{quoted_key}\s*=")
    header = re.compile(r"\s*\[+\s*([^\]]+?)\s*\]")
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        if opened := header.match(line):
            current = opened.group(1).strip("\"'")
            if table is None and current == key:
                return number
        elif current == table and key_line.match(line):
            return number
    return None


def check_template(template: object, names: tuple[str, ...] = TEMPLATE_FIELDS) -> str:
    """A template must be relative text using only the fields ``names`` ({stem} and {name}; a pull's shot
    fields); returns it unchanged."""
    if not isinstance(template, str) or not template.strip():
        raise VmatteError("an output template must be a non-empty text such as \"{stem}.alpha.mov\"")
    fields = " and ".join(f"{{{name}}}" for name in names)
    try:
        rendered = template.format(**{name: 1 if name == "index" else "clip" for name in names})
    except KeyError as exc:
        raise VmatteError(f"template {template!r}: unknown field {{{exc.args[0]}}}; use {fields}") from None
    except (IndexError, ValueError, AttributeError):
        raise VmatteError(f"template {template!r}: write fields as exactly {fields}, and {{{{ }}}} for "
                          f"literal braces") from None
    if Path(rendered).is_absolute():
        raise VmatteError(f"template {template!r}: must be relative to the output folder")
    return template


def parse_out_template(text: str, names: tuple[str, ...] = TEMPLATE_FIELDS) -> tuple[str, str]:
    """``--out-template KIND=TEMPLATE`` -> (kind, template). An empty template (``fgr=``) drops that output."""
    kind, sep, template = text.partition("=")
    kind = kind.strip()
    if not sep or kind not in OUTPUT_KINDS:
        raise VmatteError(f"--out-template {text!r}: write KIND=TEMPLATE with KIND one of "
                          f"{', '.join(OUTPUT_KINDS)}, e.g. alpha={{stem}}.alpha.mov")
    return kind, check_template(template, names) if template else ""


def merge_templates(base: Mapping[str, str], given: list[str],
                    names: tuple[str, ...] = TEMPLATE_FIELDS) -> dict[str, str]:
    """The preset's output templates with each ``--out-template KIND=TEMPLATE`` replacing (or, when
    empty, removing) that kind."""
    templates = dict(base)
    for kind, template in (parse_out_template(text, names) for text in given):
        if template:
            templates[kind] = template
        else:
            templates.pop(kind, None)
    if not templates:
        raise VmatteError("no outputs left: give at least one --out-template KIND=TEMPLATE")
    return templates


def render_outputs(templates: Mapping[str, str], input: Path, out_dir: Path,
                   subfolder: Path = Path()) -> dict[str, str]:
    """{kind: path} for one input: each template filled in, under ``out_dir / subfolder`` (the input's folder
    relative to the batch's input folder). A trailing slash (a PNG folder output) is kept. A frame pattern
    input is named as its sequence (``plates/shot_%04d.exr``: stem and name "shot")."""
    folder = Path(out_dir) / subfolder
    stem, name = (sequence_name(input),) * 2 if is_pattern(input) else (input.stem, input.name)
    outputs = {}
    for kind, template in templates.items():
        rendered = template.format(stem=stem, name=name)
        outputs[kind] = str(folder / rendered) + ("/" if rendered.endswith(("/", "\\")) else "")
    return outputs


def job_settings(input: Path, outputs: dict[str, str], options: Mapping[str, object]) -> JobSettings:
    """JobSettings for one input; a long-side downsample ratio ("768px") becomes this clip's ratio."""
    ratio = options.get("downsample_ratio")
    if isinstance(ratio, TargetLongSide):
        info = probe(input)
        options = {**options, "downsample_ratio": ratio.ratio_for(info.width, info.height)}
    return JobSettings(input=Path(input), outputs=outputs, **options)
