"""The review report (``--report PATH.html``): one self-contained HTML page for a run or a batch.

Per clip: its settings, outputs (links), timings, a contact sheet, per-frame curves of matte coverage, chatter
and holes (``frame_stats.py`` gathers them while the run streams), and the frames flagged as outliers with
thumbnails. The pictures go in a folder beside the page (``report_files/`` for ``report.html``); the page has
no scripts and loads nothing from elsewhere, so it opens offline, and its colours follow the browser's light
or dark theme. The flagged frames are also in the page as JSON (``<script id="review-data">``), for tools.
"""

import html
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .batch import ClipResult
from .contact_sheet import Tile, draw_sheet, frame_label, write_png
from .errors import VmatteError
from .frame_stats import FLOORS, SCORES, FrameStats, Thumbnail
from .resume import write_atomically

CURVES = (("coverage", "coverage (%)", "#3b82f6"), ("chatter", "chatter (dtSSD scale)", "#e8590c"),
          ("holes", "holes in the core (%)", "#9c36b5"))
FLAG_COLOUR = "#e03131"
AXIS_COLOUR = "#8a8a8a"  # mid grey: readable on the light and on the dark page

STYLE = """
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1d1d1f; --muted: #5f6368; --line: #d0d7de;
        --card: #f6f8fa; --flag: #c92a2a; --link: #0b62c4; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #121212; --fg: #e6e6e6; --muted: #a0a0a0; --line: #3a3a3a; --card: #1c1c1e; --flag: #ff6b6b;
          --link: #74b4ff; }
}
body { background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto;
       max-width: 1500px; padding: 0 1em; }
a { color: var(--link); }
h1, h2, h3 { font-weight: 600; }
section.clip { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin: 1.5em 0;
               padding: 0.5em 1.2em 1.2em; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid var(--line); padding: 0.25em 0.8em; text-align: left; vertical-align: top; }
.muted { color: var(--muted); }
.flag { color: var(--flag); font-weight: 600; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
img.thumb { max-width: 420px; margin: 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.1em 1em; }
dt { color: var(--muted); }
dd { margin: 0; }
"""

GUIDE = """
<details><summary>What the curves mean, and what to do about a flagged frame</summary>
<ul>
<li><b>coverage</b>: the share of the picture the matte covers. Steps where the shot has none (a person leaving,
a cut) are expected; a sudden dip inside a steady shot is the matte losing part of the person.</li>
<li><b>chatter</b>: how much the matte's edges change between frames where the picture there does not, on the scale
of dtSSD (the flicker metric of matting benchmarks). High values are edges, hair or limbs that flicker while the
subject holds still.</li>
<li><b>holes</b>: the share of the person's silhouette (its outline filled in) that the matte leaves transparent
&mdash; missing patches inside the body. Gaps that belong to the picture (between an arm and the body) count too,
steadily; a frame that stands out is the one to check.</li>
</ul>
<p>Frames are flagged when a score stands out from the rest of their clip. Check them in the contact sheet
and in the output; where they are real, run the clip again with <code>--quality best</code> (several passes merged,
steadier edges), a larger internal size (<code>--downsample-ratio 960px</code>), or <code>--smooth ofd</code>
for flicker of a few frames.</p>
</details>
"""


def check_report_path(path: Path) -> None:
    """Fails before any work when the report could not be written."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise VmatteError(f"--report {path}: a report is an .html file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VmatteError(f"--report {path}: cannot create the folder {path.parent} ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise VmatteError(f"--report {path}: the folder {path.parent} is not writable")


def files_dir(path: Path) -> Path:
    """The folder of the report's pictures: ``report_files`` beside ``report.html``."""
    return path.with_name(f"{path.stem}_files")


def write_report(path: Path, clips: list[ClipResult], seconds: float) -> None:
    """Writes the page and its pictures; the page last, in one step, so a failed write leaves no page."""
    path = Path(path)
    pictures = files_dir(path)
    try:
        pictures.mkdir(exist_ok=True)
        sections = [_section(path, pictures, number, clip) for number, clip in enumerate(clips, start=1)]
        page = _page(clips, sections, seconds)
        write_atomically(path, page.encode())
    except OSError as exc:
        raise VmatteError(f"--report {path}: cannot write it ({exc.strerror or exc})") from None


def review_data(clips: list[ClipResult]) -> dict:
    """What the page shows as data: per clip its frames and the frames flagged for each score."""
    return {"clips": [{"name": clip.name, "status": clip.status, "frames": clip.stats.frames if clip.stats else 0,
                       "flagged": clip.stats.flagged() if clip.stats else {score: [] for score in SCORES}}
                      for clip in clips]}


def _page(clips: list[ClipResult], sections: list[str], seconds: float) -> str:
    flagged = sum(len(set().union(*clip.stats.flagged().values())) for clip in clips if clip.stats)
    rows = "".join(
        f"<tr><td><a href=\"#clip-{number}\">{html.escape(clip.name)}</a></td><td>{html.escape(clip.status)}</td>"
        f"<td>{clip.frames if clip.stats else ''}</td><td>{_flag_count(clip)}</td></tr>"
        for number, clip in enumerate(clips, start=1))
    data = json.dumps(review_data(clips)).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light dark">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vmatte review: {len(clips)} clip{'s' * (len(clips) != 1)}</title><style>{STYLE}</style></head>
<body>
<h1>vmatte review</h1>
<p class="muted">{len(clips)} clip{'s' * (len(clips) != 1)}, {flagged} flagged frame{'s' * (flagged != 1)},
{seconds:.1f} s in all; written {time.strftime('%Y-%m-%d %H:%M')}.</p>
<table><tr><th>clip</th><th>status</th><th>frames</th><th>flagged</th></tr>{rows}</table>
{GUIDE}
{''.join(sections)}
<script type="application/json" id="review-data">{data}</script>
</body></html>
"""


def _flag_count(clip: ClipResult) -> str:
    if not clip.stats:
        return ""
    count = len(set().union(*clip.stats.flagged().values()))
    return f"<span class=\"flag\">{count}</span>" if count else "0"


def _section(path: Path, pictures: Path, number: int, clip: ClipResult) -> str:
    parts = [f"<section class=\"clip\" id=\"clip-{number}\"><h2>{html.escape(clip.name)}</h2>",
             f"<p>{html.escape(clip.status)}{': ' + html.escape(clip.message) if clip.message else ''}</p>"]
    if clip.described:
        parts.append("<h3>Settings</h3><dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                                                      for k, v in clip.described.items()) + "</dl>")
    if clip.outputs:
        parts.append("<h3>Outputs</h3><ul>" + "".join(
            f"<li>{html.escape(kind)}: <a href=\"{_href(output, path)}\">{html.escape(output)}</a></li>"
            for kind, output in clip.outputs.items()) + "</ul>")
    stats = clip.stats
    if stats is not None and stats.frames:
        share = 100 * stats.seconds / clip.seconds if clip.seconds else 0.0
        parts.append(f"<h3>Timings</h3><p>{clip.frames} frames in {clip.seconds:.1f} s ({clip.fps:.1f} fps); "
                     f"the statistics took {stats.seconds:.2f} s ({share:.1f} % of the run).</p>")
        parts.append(_contact_sheet(path, pictures, number, stats))
        parts.append(_curves(path, pictures, number, stats))
        parts.append(_flagged(path, pictures, number, stats))
    parts.append("</section>")
    return "\n".join(parts)


def _href(target: str | Path, page: Path) -> str:
    target = Path(str(target).split("%")[0]).parent if "%" in str(target) else Path(target)
    return quote(os.path.relpath(os.path.abspath(target), os.path.abspath(page.parent)).replace(os.sep, "/"))


def _tile(stats: FrameStats, thumb: Thumbnail) -> Tile:
    label = frame_label(thumb.index, thumb.time, stats.timecode, stats.frame_rate)
    return Tile(label, thumb.picture, thumb.alpha.astype(np.float32) / 255)


def _image(path: Path, picture: Path, alt: str, css: str = "") -> str:
    return f"<img{css} src=\"{_href(picture, path)}\" alt=\"{html.escape(alt)}\">"


def _contact_sheet(path: Path, pictures: Path, number: int, stats: FrameStats) -> str:
    sheet = pictures / f"clip-{number}-sheet.png"
    write_png(sheet, draw_sheet([_tile(stats, stats.sheet[index]) for index in sorted(stats.sheet)]))
    return "<h3>Contact sheet</h3>" + _image(path, sheet, "contact sheet: source, matte, composite")


def _curves(path: Path, pictures: Path, number: int, stats: FrameStats) -> str:
    from matplotlib.figure import Figure  # imported here: a run without --report never loads matplotlib

    plot = pictures / f"clip-{number}-curves.png"
    frames = stats.first + np.arange(stats.frames)
    flagged = stats.flagged()
    figure = Figure(figsize=(12, 6.4), dpi=100)
    figure.patch.set_alpha(0)  # transparent: the page's own background shows, light or dark
    axes = figure.subplots(len(CURVES), 1, sharex=True)
    for ax, (name, label, colour) in zip(axes, CURVES):
        values = np.asarray(getattr(stats, name))
        ax.plot(frames, values, color=colour, linewidth=1.4)
        if name in flagged and flagged[name]:
            marked = np.asarray(flagged[name]) - stats.first
            ax.scatter(frames[marked], values[marked], color=FLAG_COLOUR, s=22, zorder=3, label="flagged")
            ax.legend(loc="upper right", frameon=False, labelcolor=AXIS_COLOUR)
        if name in FLOORS:
            ax.axhline(FLOORS[name], color=AXIS_COLOUR, linewidth=0.8, linestyle=":")
        ax.set_ylabel(label, color=AXIS_COLOUR)
        ax.set_facecolor("none")
        ax.tick_params(colors=AXIS_COLOUR)
        for spine in ax.spines.values():
            spine.set_color(AXIS_COLOUR)
        ax.grid(True, color=AXIS_COLOUR, alpha=0.25, linewidth=0.6)
    axes[-1].set_xlabel("frame", color=AXIS_COLOUR)
    figure.tight_layout()
    figure.savefig(plot, format="png", transparent=True)
    return "<h3>Per frame</h3>" + _image(path, plot, "per-frame coverage, chatter and holes")


def _flagged(path: Path, pictures: Path, number: int, stats: FrameStats) -> str:
    flagged = stats.flagged()
    by_frame: dict[int, list[str]] = {}
    for score, frames in flagged.items():
        for index in frames:
            by_frame.setdefault(index, []).append(score)
    if not by_frame:
        return "<h3>Flagged frames</h3><p class=\"muted\">none: no frame stands out from the rest of the clip.</p>"
    thumbnails = stats.thumbnails()
    rows = []
    for index in sorted(by_frame):
        scores = ", ".join(f"{score} {getattr(stats, score)[index - stats.first]:.2f}" for score in by_frame[index])
        thumb = thumbnails.get(index)
        if thumb is not None:
            picture = pictures / f"clip-{number}-frame-{index}.png"
            write_png(picture, draw_sheet([_tile(stats, thumb)], columns=1))
            cell = _image(path, picture, f"frame {index}", " class=\"thumb\"")
        else:
            cell = "<span class=\"muted\">(no thumbnail: only the clip's worst frames keep one)</span>"
        label = frame_label(index, 0.0, stats.timecode, stats.frame_rate) if stats.timecode else f"frame {index}"
        rows.append(f"<tr data-frame=\"{index}\" data-scores=\"{' '.join(by_frame[index])}\"><td>{label}</td>"
                    f"<td class=\"flag\">{html.escape(scores)}</td><td>{cell}</td></tr>")
    return ("<h3>Flagged frames</h3><table class=\"flagged\"><tr><th>frame</th><th>scores</th><th>source | matte | "
            "composite</th></tr>" + "".join(rows) + "</table>")
