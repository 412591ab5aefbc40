"""Presets: the shipped files, lookup, merging with command-line options, templates, and error messages."""

from fractions import Fraction
from pathlib import Path

import pytest

from vmatte.errors import VmatteError
from vmatte.pipeline import JobSettings
from vmatte.presets import (
    BUNDLED_DIR,
    TargetLongSide,
    first_available_model,
    job_settings,
    list_presets,
    load_preset,
    merge_templates,
    parse_downsample_ratio,
    parse_frame_rate,
    parse_out_template,
    render_outputs,
)

SHIPPED = {"prores-alpha", "editor-plate", "png16", "preview", "quality", "fast"}


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """A fresh $VMATTE_HOME, so user presets or weights on this machine do not leak into the tests."""
    home = tmp_path / "home"
    monkeypatch.setenv("VMATTE_HOME", str(home))
    monkeypatch.delenv("VMATTE_WEIGHTS", raising=False)
    monkeypatch.setenv("VMATTE_OFFLINE", "1")
    return home


def write_preset(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_list_presets_shows_every_shipped_preset_with_its_description():
    listed = {name: (description, path) for name, description, path in list_presets()}
    assert set(listed) == SHIPPED
    for name, (description, path) in listed.items():
        assert description and len(description) < 100
        assert path == BUNDLED_DIR / f"{name}.toml"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_preset_loads_and_renders(name, tmp_path, samples_dir):
    preset = load_preset(name)
    clip = samples_dir / "portrait_videos" / "sam2_bedroom_child_960x540.mp4"
    outputs = render_outputs(preset.outputs, clip, tmp_path / "out", Path("day1"))
    assert outputs and set(outputs) <= {"alpha", "fgr", "comp"}
    for path in outputs.values():
        assert path.startswith(str(tmp_path / "out" / "day1" / "sam2_bedroom_child_960x540"))
    settings = job_settings(clip, outputs, preset.apply())
    assert isinstance(settings, JobSettings)
    assert settings.downsample_ratio is None or 0 < settings.downsample_ratio <= 1


def test_shipped_presets_say_what_they_promise(samples_dir):
    assert load_preset("prores-alpha").outputs == {"alpha": "{stem}.alpha.mov"}
    assert set(load_preset("editor-plate").outputs) == {"fgr", "alpha"}
    assert load_preset("png16").options["png_depth"] == 16
    assert load_preset("preview").outputs["comp"].endswith(".mp4")
    fast = load_preset("fast")
    assert fast.options["quality"] == "fast" and set(fast.outputs) == {"alpha"}
    quality = load_preset("quality")
    assert quality.options["model"] == ("rvm-resnet50", "rvm-mobilenetv3") and quality.options["quality"] == "best"
    # A long side of 768 px: a 960x540 clip runs at 0.8, and a clip smaller than that is never upsampled.
    clip = samples_dir / "portrait_videos" / "sam2_bedroom_child_960x540.mp4"
    assert job_settings(clip, {}, quality.apply()).downsample_ratio == pytest.approx(0.8)
    assert TargetLongSide(768).ratio_for(640, 428) == 1.0


def test_command_line_options_win_and_only_given_ones_count():
    fast = load_preset("fast")
    options = fast.apply({"downsample_ratio": None, "chunk": 8})  # None: the user asked for 'auto'
    assert options["downsample_ratio"] is None and options["chunk"] == 8
    assert options["quality"] == "fast"  # not given: the preset's value stays
    assert fast.apply({"quality": "best"})["quality"] == "best"
    assert "png_depth" not in fast.apply()  # not in the preset: JobSettings' default applies


def test_model_list_takes_the_first_model_present(tmp_path, monkeypatch, weights_dir):
    monkeypatch.setenv("VMATTE_WEIGHTS", str(weights_dir))
    assert first_available_model(("rvm-resnet50", "rvm-mobilenetv3-int8")) == "rvm-mobilenetv3-int8"
    # Nothing present: the last one (the one that downloads or falls back).
    assert load_preset("quality").apply()["model"] == "rvm-mobilenetv3"
    extra = tmp_path / "more_weights"
    extra.mkdir()
    (extra / "rvm_resnet50.pth").write_bytes(b"stand-in")  # no published checksum, so presence is enough
    monkeypatch.setenv("VMATTE_WEIGHTS", f"{weights_dir}:{extra}")
    assert load_preset("quality").apply()["model"] == "rvm-resnet50"
    assert load_preset("quality").apply({"model": "rvm-mobilenetv3"})["model"] == "rvm-mobilenetv3"


def test_user_preset_is_found_by_name_and_replaces_a_shipped_one(own_home):
    folder = own_home / "presets"
    write_preset(folder, "mine", 'description = "My look"\nbackground = "#102030"\n[outputs]\ncomp = "{name}.mov"\n')
    write_preset(folder, "fast", 'description = "My fast"\n[outputs]\nalpha = "{stem}.a.mov"\n')
    mine = load_preset("mine")
    assert mine.options == {"background": "#102030"} and mine.outputs == {"comp": "{name}.mov"}
    assert load_preset("fast").description == "My fast"
    assert {name for name, _, _ in list_presets()} == SHIPPED | {"mine"}


def test_preset_file_path_is_read_directly(tmp_path):
    path = write_preset(tmp_path, "look", 'description = "d"\nchunk = 2\n[outputs]\nalpha = "{stem}/"\n')
    preset = load_preset(str(path))
    assert preset.name == "look" and preset.options == {"chunk": 2}
    with pytest.raises(VmatteError, match="preset file .*nothere.toml not found"):
        load_preset(str(tmp_path / "nothere.toml"))


def test_unknown_preset_name_lists_the_available_ones():
    with pytest.raises(VmatteError) as caught:
        load_preset("prores")
    message = str(caught.value)
    assert "unknown preset 'prores'" in message
    for name in SHIPPED:
        assert name in message


def test_malformed_toml_names_file_and_line(tmp_path):
    path = write_preset(tmp_path, "broken", 'description = "d"\n\n[outputs\nalpha = "{stem}.mov"\n')
    with pytest.raises(VmatteError) as caught:
        load_preset(str(path))
    message = str(caught.value)
    assert str(path) in message and "not valid TOML" in message and "line 3" in message


def test_unknown_key_names_file_line_key_and_allowed_keys(tmp_path):
    path = write_preset(tmp_path, "typo", 'description = "d"\n# a comment\nmodle = "rvm-resnet50"\n'
                                          '[outputs]\nalpha = "{stem}.mov"\n')
    with pytest.raises(VmatteError) as caught:
        load_preset(str(path))
    message = str(caught.value)
    assert message.startswith(f"preset {path}, line 3: unknown key 'modle'; allowed keys: description, outputs, model,")
    assert "skip_corrupt" in message


def test_unknown_output_kind_is_found_inside_its_table(tmp_path):
    # 'alpha' also appears at the top level of the text; the line reported is the one inside [outputs].
    path = write_preset(tmp_path, "kind", 'description = "alpha matte"\n[outputs]\nalpha = "{stem}.mov"\n'
                                          'matte = "{stem}.m.mov"\n')
    with pytest.raises(VmatteError, match=r"kind.toml, line 4: unknown output kind 'matte' in \[outputs\]; "
                                          r"allowed keys: alpha, fgr, comp"):
        load_preset(str(path))


@pytest.mark.parametrize("line, expected", [
    ("chunk = \"four\"", "chunk = 'four' is not valid: expected a whole number from 1 to 64"),
    ("premultiplied = 1", "premultiplied = 1 is not valid: expected true or false"),
    ("png_depth = 12", "png_depth = 12 is not valid: expected 8 or 16"),
    ("model = [\"rvm-resnet50\", \"nope\"]", "model = ['rvm-resnet50', 'nope'] is not valid: expected a model name"),
    ("downsample_ratio = 1.5", "downsample_ratio = 1.5 is not valid: expected 'auto', a number in (0, 1]"),
    ("refiner = \"deep\"", "refiner = 'deep' is not valid: expected one of auto, deep_guided_filter"),
    ("sequence_fps = \"fast\"", "sequence_fps = 'fast' is not valid: expected a frame rate such as 24"),
    ("quality = \"ultra\"", "quality = 'ultra' is not valid: expected one of fast, standard, best"),
])
def test_wrong_value_names_file_line_and_key(tmp_path, line, expected):
    path = write_preset(tmp_path, "bad", f'description = "d"\n{line}\n[outputs]\nalpha = "{{stem}}.mov"\n')
    with pytest.raises(VmatteError) as caught:
        load_preset(str(path))
    assert str(caught.value).startswith(f"preset {path}, line 2: {expected}")


@pytest.mark.parametrize("level", ["fast", "standard", "best"])
def test_quality_key_is_parsed_and_reaches_the_job(level, tmp_path):
    path = write_preset(tmp_path, "q", f'description = "d"\nquality = "{level}"\n[outputs]\nalpha = "{{stem}}.mov"\n')
    preset = load_preset(str(path))
    assert preset.options == {"quality": level}
    assert job_settings(tmp_path / "clip.mp4", {}, preset.apply()).quality == level


def test_missing_outputs_and_bad_templates_are_explained(tmp_path):
    path = write_preset(tmp_path, "none", 'description = "d"\n')
    with pytest.raises(VmatteError, match="needs an \\[outputs\\] table"):
        load_preset(str(path))
    path = write_preset(tmp_path, "field", 'description = "d"\n[outputs]\n\nalpha = "{title}.mov"\n')
    with pytest.raises(VmatteError, match=r"field.toml, line 4: outputs.alpha: template '\{title\}.mov'.*\{stem\}"):
        load_preset(str(path))


def test_out_template_overrides(tmp_path):
    assert parse_out_template("alpha={stem}.a.mov") == ("alpha", "{stem}.a.mov")
    editor = load_preset("editor-plate").outputs
    merged = merge_templates(editor, ["fgr=", "comp={name}.preview.mp4"])  # an empty template drops that output
    assert merged == {"alpha": "{stem}.alpha.mov", "comp": "{name}.preview.mp4"}
    for bad in ("alpha", "matte=x.mov", "alpha={frame}.mov", "alpha=/abs/{stem}.mov"):
        with pytest.raises(VmatteError, match="template"):
            parse_out_template(bad)
    with pytest.raises(VmatteError, match="no outputs left"):
        merge_templates({"alpha": "a.mov"}, ["alpha="])


def test_render_outputs_mirrors_subfolders_and_keeps_folder_slashes(tmp_path):
    templates = {"alpha": "{stem}_alpha/", "fgr": "{name}.fgr/%06d.png", "comp": "{stem}.mov"}
    outputs = render_outputs(templates, Path("in/day 1/take.02.mp4"), tmp_path, Path("day 1"))
    assert outputs == {"alpha": f"{tmp_path}/day 1/take.02_alpha/",
                       "fgr": f"{tmp_path}/day 1/take.02.mp4.fgr/%06d.png",
                       "comp": f"{tmp_path}/day 1/take.02.mov"}


def test_parse_frame_rate():
    """Decimal NTSC rates mean the exact 1000/1001 ones; everything else is taken exactly."""
    assert parse_frame_rate("23.976") == Fraction(24000, 1001) == parse_frame_rate(23.976)
    assert parse_frame_rate("29.97") == Fraction(30000, 1001) and parse_frame_rate("59.94") == Fraction(60000, 1001)
    assert parse_frame_rate("24000/1001") == Fraction(24000, 1001)
    assert parse_frame_rate(24) == 24 and parse_frame_rate("25") == 25 and parse_frame_rate("12.5") == Fraction(25, 2)
    for bad in ("0", "-24", "fast", "1/0", True):
        with pytest.raises(VmatteError, match="frame rate"):
            parse_frame_rate(bad)


def test_parse_downsample_ratio():
    assert parse_downsample_ratio("auto") is None
    assert parse_downsample_ratio("0.5") == 0.5 and parse_downsample_ratio(1) == 1.0
    assert parse_downsample_ratio("768px") == TargetLongSide(768)
    for bad in ("0", "1.5", "fast", "8px", True):
        with pytest.raises(VmatteError, match="downsample_ratio"):
            parse_downsample_ratio(bad)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_preset_runs_end_to_end_and_writes_what_it_describes(name, tmp_path, samples_dir, weights_dir,
                                                                           monkeypatch):
    """Each preset on a real clip with audio, through the command line; the outputs are probed."""
    import av
    from typer.testing import CliRunner

    from vmatte.cli import app

    monkeypatch.setenv("VMATTE_WEIGHTS", str(weights_dir))
    monkeypatch.setenv("VMATTE_OFFLINE", "1")
    clip = samples_dir / "robustness_videos" / "imageio_realshort_2997_aac.mp4"  # 36 frames, 320x240, AAC
    result = CliRunner().invoke(app, ["run", str(clip), "--preset", name, "--out-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    stem = clip.stem
    expected = {
        "prores-alpha": {f"{stem}.alpha.mov"},
        "editor-plate": {f"{stem}.fgr.mov", f"{stem}.alpha.mov"},
        "png16": {f"{stem}.alpha"},
        "preview": {f"{stem}.preview.mp4"},
        "quality": {f"{stem}.alpha.mov", f"{stem}.fgr.mov"},
        "fast": {f"{stem}.alpha.mov"},
    }[name]
    # $VMATTE_HOME (own_home) is in tmp_path too: the CPU backend caches its compiled model there.
    assert {p.name for p in tmp_path.iterdir()} - {"home"} == expected
    for file in expected:
        path = tmp_path / file
        if path.is_dir():  # 16-bit grey PNG matte sequence
            pngs = sorted(path.iterdir())
            assert len(pngs) == 36
            with av.open(str(pngs[0])) as image:
                assert image.streams.video[0].codec_context.pix_fmt == "gray16be"
            continue
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            assert video.frames == 36
            codec = video.codec_context
            if path.suffix == ".mov":
                assert codec.name == "prores" and video.codec_tag == "ap4h" and codec.pix_fmt.startswith("yuva444p")
                assert bool(container.streams.audio) == (".fgr." in file)  # audio kept in the foreground
            else:
                assert codec.name == "h264"
