"""arc-trm show / report / plot on real arc1-eval tasks; the report is opened in headless chromium."""

import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import ARC_TRM

from arc_trm.cli import main
from arc_trm.errors import UserError
from arc_trm.render import PALETTE, layout_task, load_predictions, read_metrics, write_report
from arc_trm.tasks import load_tasks

SVG = "{http://www.w3.org/2000/svg}"
# three real tasks: solved by attempt 1, solved by attempt 2, failed (see _write_eval_dir)
SOLVED_1, SOLVED_2, FAILED = "00576224", "009d5c81", "0607ce86"


@pytest.fixture(scope="module")
def tasks():
    return load_tasks("arc1-eval")


def _task(tasks, task_id):
    return next(t for t in tasks if t.id == task_id)


def _wrong(grid: np.ndarray) -> np.ndarray:
    out = grid.copy()
    out[0, 0] = (out[0, 0] + 1) % 10
    return out


def _write_eval_dir(path, tasks):
    """submission.json + results.json as `arc-trm evaluate` writes them (the producer's contract)."""
    path.mkdir()
    sub, results = {}, {}
    for task_id in (SOLVED_1, SOLVED_2, FAILED):
        sub[task_id], results[task_id] = [], []
        for y in _task(tasks, task_id).test_outputs:
            attempts = {SOLVED_1: (y, _wrong(y)), SOLVED_2: (_wrong(y), y), FAILED: (_wrong(y), _wrong(y).T)}
            a1, a2 = (a.tolist() for a in attempts[task_id])
            sub[task_id].append({"attempt_1": a1, "attempt_2": a2})
            results[task_id].append({
                "candidates": [{"grid": a1, "votes": 12, "halt_prob": 0.91},
                               {"grid": a2, "votes": 5, "halt_prob": 0.62},
                               {"grid": [[3]], "votes": 1, "halt_prob": 0.05}],
                "correct_rank": {SOLVED_1: 1, SOLVED_2: 2, FAILED: None}[task_id]})
    scores = {"pass@1": 1 / 3, "pass@2": 2 / 3, "pass@5": 2 / 3, "pass@10": 2 / 3, "pass@100": 2 / 3,
              "oracle": 2 / 3, "score": 2 / 3, "task_score": 2 / 3}
    scores["interval"] = {name: [0.094, 0.992] if value == 2 / 3 else [0.008, 0.906]
                          for name, value in scores.items() if name != "task_score"}
    (path / "submission.json").write_text(json.dumps(sub))
    (path / "results.json").write_text(json.dumps({"source": "arc1-eval", "scores": scores, "tasks": results}))
    return path


def _cells(task, with_attempts: bool) -> int:
    grids = task.grids(with_test_outputs=True) + (2 * list(task.test_outputs) if with_attempts else [])
    return sum(g.size for g in grids)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _arc_trm(*args, cwd):
    return subprocess.run([ARC_TRM, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_show_svg_and_png(tmp_path, monkeypatch, tasks):
    ev = _write_eval_dir(tmp_path / "ev", tasks)
    task = _task(tasks, SOLVED_2)
    r = _arc_trm("show", SOLVED_2, "--dataset", "arc1-eval", "--submission", "ev", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    root = ET.parse(tmp_path / f"{SOLVED_2}.svg").getroot()  # the default --out
    grids = [g for g in root.iter(f"{SVG}g") if g.get("class") == "grid"]
    assert len(grids) == 2 * len(task.train) + 4 * len(task.test_inputs)
    assert sum(len(g.findall(f"{SVG}rect")) for g in grids) == _cells(task, with_attempts=True)
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "attempt 1 \u2717" in texts and "attempt 2 \u2713" in texts
    assert "rank 1: 12 votes, halt 0.91" in texts and "true output: rank 2" in texts

    # a plain submission JSON: the same picture without votes, as PNG of the SVG's size (in-process)
    monkeypatch.chdir(tmp_path)
    assert main(["show", SOLVED_2, "--dataset", "arc1-eval", "--submission", str(ev / "submission.json"),
                 "--out", "t.png"]) == 0
    preds = load_predictions(ev / "submission.json", tasks)[SOLVED_2]
    lay = layout_task(task, preds)
    assert _png_size(tmp_path / "t.png") == (lay.width, lay.height)
    from PIL import Image

    image = np.asarray(Image.open(tmp_path / "t.png").convert("RGB"))
    for p in lay.panels:  # the centre of every grid's top-left cell has that cell's palette colour
        rgb = image[p.y + p.cell // 2, p.x + p.cell // 2]
        assert "#{:02X}{:02X}{:02X}".format(*rgb) == PALETTE[p.grid[0, 0]], p.title


def test_show_html_without_submission(tmp_path, tasks):
    assert main(["show", FAILED, "--dataset", "arc1-eval", "--out", str(tmp_path / "t.html")]) == 0
    html = (tmp_path / "t.html").read_text()
    assert html.count(f'<section class="task" id="task-{FAILED}"') == 1
    assert html.count('class="grid"') == len(_task(tasks, FAILED).grids(with_test_outputs=True))


@pytest.mark.parametrize("args, message", [
    (["nosuchtask", "--dataset", "arc1-eval"], "task nosuchtask: not in arc1-eval"),
    ([SOLVED_1, "--dataset", "arc1-eval", "--out", "x.gif"], "x.gif: unknown picture format"),
    ([SOLVED_1, "--dataset", "arc1-eval", "--submission", "missing.json"], "missing.json: no such file"),
])
def test_show_errors(capsys, args, message):
    assert main(["show", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arc-trm show: error: ") and message in err and err.count("\n") == 1


def _sections(html: str) -> list[str]:
    return re.findall(r'<section class="task" id="task-([^"]+)"', html)


def test_report_orders(tmp_path, tasks):
    ev = _write_eval_dir(tmp_path / "ev", tasks)
    r = _arc_trm("report", "ev", "--dataset", "arc1-eval", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    html = (ev / "report.html").read_text()
    assert _sections(html) == [FAILED, SOLVED_1, SOLVED_2]  # ties keep the submission's order
    assert "pass@100" in html and "3 tasks: 2 solved, 1 failed" in html
    # each score beside its 95% interval; task_score has none
    assert "<th>95% interval</th>" in html and "<tr><td>score</td><td>0.6667</td><td>0.09-0.99</td></tr>" in html
    assert "<tr><td>pass@1</td><td>0.3333</td><td>0.01-0.91</td></tr>" in html
    assert "<tr><td>task_score</td><td>0.6667</td><td></td></tr>" in html and "<td>interval</td>" not in html
    assert not re.search(r'(src|href)="(?!data:)', html), "the report must not load other files"
    write_report(ev, tasks, order="solved-first")
    assert _sections((ev / "report.html").read_text()) == [SOLVED_1, SOLVED_2, FAILED]
    with pytest.raises(UserError, match="unknown order"):
        write_report(ev, tasks, order="random")


def test_report_refuses_a_malformed_interval(tmp_path, tasks):
    ev = _write_eval_dir(tmp_path / "ev", tasks)
    results = json.loads((ev / "results.json").read_text())
    results["scores"]["interval"]["score"] = [0.1]
    (ev / "results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match="results.json: scores.interval: expected an object"):
        write_report(ev, tasks)


def test_report_rejects_task_not_in_dataset(tmp_path, tasks):
    ev = _write_eval_dir(tmp_path / "ev", tasks)
    with pytest.raises(UserError, match=f"submission.json: task {SOLVED_1}: not in the dataset"):
        write_report(ev, [t for t in tasks if t.id != SOLVED_1])


def _write_metrics(run_dir, lines: list[str]):
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("\n".join(lines))


def test_plot_overlays_runs(tmp_path):
    rng = np.random.default_rng(0)
    for name, scale in (("a", 1.0), ("b", 0.5)):
        lines = []
        for step in range(0, 200, 10):
            row = {"step": step, "loss": scale * 3 * np.exp(-step / 80) + 0.01 * rng.random(),
                   "exact_accuracy": step / 400, "halt_accuracy": 0.5 + step / 500, "lr": 1e-4}
            if name == "a":
                row["mean_steps"] = 16 - step / 20  # run b never logs it: its panel shows run a only
            lines.append(json.dumps(row))
            if step % 50 == 0:
                lines.append(json.dumps({"step": step, "eval_exact_accuracy": step / 600}))
        _write_metrics(tmp_path / name, lines + ['{"step": 200, "lo'])  # the last line half-written
    assert len(read_metrics(tmp_path / "a")) == 24
    r = _arc_trm("plot", "a", "b", "--out", "curves.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _png_size(tmp_path / "curves.png") == (1500, 800)


@pytest.mark.parametrize("lines, message", [
    (['{"step": 1, "loss": 2}', "{oops", '{"step": 2}'], "metrics.jsonl: line 2: not valid JSON"),
    (['{"loss": 2}'], "metrics.jsonl: no logged steps"),
])
def test_plot_errors(tmp_path, capsys, lines, message):
    _write_metrics(tmp_path / "run", lines)
    assert main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "c.png")]) == 2
    assert message in capsys.readouterr().err


def _chromium(html_path, profile) -> tuple[str, list[str]]:
    """Load a page in headless chromium: (the DOM after load, the console messages it logged)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        message = "chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    r = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", html_path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    # with --enable-logging every console message of the page (errors included) is an INFO:CONSOLE line
    return r.stdout, [line for line in r.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.slow
def test_report_in_browser(tmp_path, tasks):
    ev = _write_eval_dir(tmp_path / "ev", tasks)
    report = write_report(ev, tasks)
    dom, console = _chromium(report, tmp_path / "profile")
    assert console == [], console
    assert _sections(dom) == [FAILED, SOLVED_1, SOLVED_2]
    assert dom.count("<svg") == 3
    # the console check can fail: the same page with one bad SVG attribute logs an error
    broken = ev / "broken.html"
    broken.write_text(report.read_text().replace('<rect ', '<rect rx="oops" ', 1))
    _, console = _chromium(broken, tmp_path / "profile")
    assert any("rx" in line for line in console), console


def test_readme_example_is_current(tmp_path):
    """docs/show-example.svg is what the README's command draws today."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    out = tmp_path / "show-example.svg"
    assert main(["show", "0c786b71", "--dataset", "arc1-eval", "--submission", str(docs / "example-eval"),
                 "--out", str(out)]) == 0
    assert out.read_text() == (docs / "show-example.svg").read_text(), "rerun the README's `arc-trm show`"
