"""The review report in a real browser: headless Chromium (Debian's ``chromium``, installed by .ci/run) opens the
report of a small batch, made by the command docs/review.md gives, and takes a screenshot with the command the
page gives. Checked: nothing went wrong on the page (errors caught by a checking script put into a copy of the
page, and Chromium's console log), every picture is there and decodes, and the flagged frames each clip lists
are those in the report's data. Skips where Chromium is absent, except in CI, where that is a failure."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

import cv2
import media
import pytest
from test_review import SOURCE, doc_commands, invoke

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
CHECK = """<script>
window.vmatteErrors = [];
window.addEventListener("error", event => window.vmatteErrors.push(event.message ||
    "failed to load " + (event.target.src || event.target.href)), true);
const consoleError = console.error;
console.error = (...parts) => { window.vmatteErrors.push(parts.join(" ")); consoleError(...parts); };
window.addEventListener("load", () => {
  const result = {
    errors: window.vmatteErrors,
    images: [...document.images].map(image => ({src: image.getAttribute("src"),
                                                 decoded: image.complete && image.naturalWidth > 0})),
    listed: [...document.querySelectorAll("section.clip")].map(section => ({
      name: section.querySelector("h2").textContent,
      frames: [...section.querySelectorAll("tr[data-frame]")].map(row => Number(row.dataset.frame))})),
    data: JSON.parse(document.getElementById("review-data").textContent),
  };
  const out = document.createElement("pre");
  out.id = "vmatte-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is missing (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def test_report_of_a_batch_in_chromium(tmp_path, chromium, samples_dir, weights_dir, monkeypatch):
    footage = tmp_path / "footage"
    footage.mkdir()
    media.write_scaled_clip(footage / "jump.mp4", samples_dir / SOURCE, 24, 192, 108, start=100)
    media.write_scaled_clip(footage / "start.mp4", samples_dir / SOURCE, 12, 160, 90)
    monkeypatch.chdir(tmp_path)
    (line,) = [line for line in doc_commands("vmatte") if "--report" in line and "footage/" in line]
    result = invoke(shlex.split(line)[1:])
    assert result.exit_code == 0, result.output
    report = tmp_path / re.search(r"--report (\S+)", line).group(1)
    page = report.read_text()

    checked = report.with_name("checked.html")  # beside it, so its pictures resolve the same way
    checked.write_text(page.replace("<head>", "<head>" + CHECK, 1))
    profile = tmp_path / "profile"
    run = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                          "--v=0", "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    found = re.search(r'<pre id="vmatte-check">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the checking script did not run:\n{run.stderr[-3000:]}"
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                       .replace("&amp;", "&"))
    assert check["errors"] == []
    console = [entry for entry in run.stderr.splitlines() if "CONSOLE" in entry]
    assert console == [], console
    assert len(check["images"]) >= 4 and all(image["decoded"] for image in check["images"]), check["images"]
    for image in check["images"]:  # and each decodes outside the browser too
        assert cv2.imread(str(report.parent / image["src"])) is not None, image["src"]
    assert [clip["name"] for clip in check["data"]["clips"]] == ["jump.mp4", "start.mp4"]
    assert any(clip["frames"] for clip in check["listed"]), "no frame flagged: the comparison below says nothing"
    for listed, data in zip(check["listed"], check["data"]["clips"]):
        assert listed["name"] == data["name"]
        assert listed["frames"] == sorted(set().union(*map(set, data["flagged"].values()))), (listed, data)

    (screenshot_line,) = doc_commands("chromium")
    shot = subprocess.run(["bash", "-c", screenshot_line], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert shot.returncode == 0, shot.stderr[-3000:]
    screenshot = tmp_path / re.search(r"--screenshot=(\S+)", screenshot_line).group(1)
    picture = cv2.imread(str(screenshot))  # kept in pytest's tmp folder as the test's artefact
    assert picture is not None and picture.shape[0] > 1000 and picture.std() > 20
    print(f"screenshot: {screenshot}")
