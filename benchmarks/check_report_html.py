"""Open a report.html in headless Chromium as a reader would (from disk, no network), fail on console errors
or images that did not load, and save a full-page screenshot.

    python benchmarks/check_report_html.py [DIR] [--screenshot report.png] [--width 1280]

Without DIR it first makes one on the bundled ResNet-20: the goal mode on 200 calibration images with an
`analyze` curve beside it, so every figure but recovery and sweep is drawn. Needs Debian's `chromium`
(`apt-get install -y chromium`); it is a script, not a test, so the suite runs on machines without it.
Exit codes: 0 the page loaded clean, 1 it did not (each problem printed), 2 no chromium or no report.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "edgeprune" / "reference" / "resnet20_fmnist.onnx"
IMAGES = ROOT / "calibration" / "fashion-mnist"
MARK = "edgeprune-check"
# Appended to a copy of the page only: collects console errors and uncaught exceptions, and once the page
# (its images included) has loaded, writes what it found into an element that --dump-dom shows.
PROBE = """<script>
(function () {
  var found = {errors: [], images: 0, broken: [], height: 0};
  var original = console.error;
  console.error = function () { found.errors.push(Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); };
  window.addEventListener("error", function (e) {
    var what = e.message || ("failed to load " + ((e.target && (e.target.src || e.target.href)) || "?").slice(0, 60));
    found.errors.push(String(what));
  }, true);
  window.addEventListener("load", function () {
    var all = Array.prototype.slice.call(document.images);
    found.images = all.length;
    all.forEach(function (img, i) { if (!img.complete || img.naturalWidth === 0) found.broken.push(i + ": " + img.alt); });
    found.height = document.documentElement.scrollHeight;
    var out = document.createElement("pre"); out.id = "MARK"; out.textContent = JSON.stringify(found);
    document.body.appendChild(out);
  });
})();
</script>""".replace("MARK", MARK)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no chromium on this machine: apt-get update && apt-get install -y chromium")


def browser(binary: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120)


def make_report(folder: Path) -> Path:
    """A real report: the goal mode on the reference model, with the superization curve beside it."""
    out = folder / "run"
    common = ["--calib", str(IMAGES), "--preset", "fashion-mnist"]
    steps = [
        [
            "optimize",
            str(MODEL),
            *common,
            "--limit",
            "200",
            "--device",
            "jetson",
            "--latency-rounds",
            "10",
            "--out",
            str(out),
        ],
        ["analyze", str(MODEL), *common, "--limit", "32", "--out", str(out)],
        ["report", str(out)],
    ]
    for step in steps:
        subprocess.run([sys.executable, "-m", "edgeprune", *step], check=True, cwd=ROOT)
    return out


def check(page: Path, screenshot: Path, width: int) -> list[str]:
    binary = chromium()
    html = page.read_text(encoding="utf-8")
    problems = [f"the page references the network: {m}" for m in re.findall(r"https?://[^\"' <]+", html)[:3]]
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "probe.html"
        # first in the document, so it sees every console call and error of the page's own scripts
        probe.write_text(re.sub(r"(<html[^>]*>)", lambda m: m.group(1) + PROBE, html, count=1), encoding="utf-8")
        size = f"--window-size={width},1000"  # the width the screenshot is taken at: the layout depends on it
        done = browser(binary, "--dump-dom", "--virtual-time-budget=15000", size, probe.as_uri())
    match = re.search(rf'<pre id="{MARK}">(.*?)</pre>', done.stdout, re.S)
    if match is None:
        return problems + ["the page never finished loading (no load event)"]
    found = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    problems += [f"console error: {text}" for text in found["errors"]]
    problems += [f"image did not load: {alt}" for alt in found["broken"]]
    problems += [line for line in done.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    if found["images"] == 0:
        problems.append("the page has no images")
    height = min(max(int(found["height"]) + 40, 800), 16000)
    shot = browser(binary, f"--screenshot={screenshot}", f"--window-size={width},{height}", page.as_uri())
    if not screenshot.is_file():
        problems.append(f"no screenshot was written: {shot.stderr.strip().splitlines()[-1:]}")
    print(
        f"{page}: {found['images']} images, all loaded: {not found['broken']}; page {found['height']} px high; "
        f"screenshot {screenshot} ({width}x{height})"
    )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, help="a folder with report.html (default: make one)")
    parser.add_argument("--screenshot", type=Path, default=Path("report-screenshot.png"))
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or make_report(Path(scratch))
        page = folder / "report.html"
        if not page.is_file():
            print(f"no report.html in {folder}", file=sys.stderr)
            sys.exit(2)
        problems = check(page.resolve(), args.screenshot.resolve(), args.width)
    for problem in problems:
        print(f"problem: {problem}")
    print("ok: loaded clean" if not problems else f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
