"""Pictures people inspect by eye: tasks with predictions, evaluation reports, training curves.

- A task picture: demonstration pairs, then each test input beside its true output (when known) and,
  given predictions, both attempts with correct/wrong marks and the vote counts of the top candidates.
  One pixel layout (`layout_task`) drawn two ways: SVG with drawsvg, PNG with matplotlib, so both
  show the same thing at the same size. Colours are the standard ARC palette.
- Predictions come from a Kaggle submission JSON or an evaluation directory (`submission.json` plus
  `results.json`, whose ranked candidates carry vote counts, halt probabilities and the true output's rank).
- `write_report`: `report.html` in an evaluation directory, self-contained (inline SVG, no scripts):
  the scores with their confidence intervals, then one `<section class="task" id="task-ID">` per task,
  failed or solved first.
- `plot_runs`: loss, accuracies, mean supervision steps and learning rate against step from each run
  directory's `metrics.jsonl`, several runs overlaid.
"""

import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np

from arc_trm.atomic import atomic_write, atomic_write_text
from arc_trm.errors import UserError
from arc_trm.submission import ATTEMPTS, CONFIDENCE, format_interval, load_submission, validate_submission
from arc_trm.tasks import Task, load_tasks, read_json

# colour c of a grid is drawn as PALETTE[c] (the palette of the ARC-AGI web viewer)
PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
           "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")
GRID_LINE = "#555555"
MARK_COLOUR = {True: "#1A7F37", False: "#CF222E"}  # frame of a correct / wrong attempt
MARK_SYMBOL = {True: "\u2713", False: "\u2717"}  # check mark / ballot x: readable without colour
PICTURE_SUFFIXES = (".svg", ".png", ".html")
PLOT_SUFFIXES = (".png", ".svg")
ORDERS = ("failed-first", "solved-first")
TOP_VOTES = 5  # vote counts of this many top candidates are printed under a test row

# layout in pixels (PNG is drawn at 72 dpi so a font size in points equals the SVG size in pixels)
MARGIN, GAP, ROW_GAP = 10, 18, 16
HEADER, TITLE, NOTE = 18, 16, 16  # line heights: row header, panel title, note under a grid
FONT, HEADER_FONT = 11, 13
CHAR_WIDTH = 6.5  # rough width of one character at FONT px, to keep titles from overlapping
MAX_CELL, MIN_CELL, TARGET_SIDE = 16, 4, 180  # a grid's longer side is drawn about TARGET_SIDE px


@dataclass
class Prediction:
    """What is known of the predictions for one test input."""
    attempts: tuple[np.ndarray, np.ndarray]  # attempt_1, attempt_2 of the submission
    # results.json's ranked candidates, best first: (grid as JSON rows, votes, mean halt probability)
    candidates: list[tuple[list, int, float]] = field(default_factory=list)
    correct_rank: int | None = None  # 1-based rank of the true output among the candidates


@dataclass
class Panel:
    x: int  # top-left corner of the grid
    y: int
    cell: int  # side of one cell in pixels
    grid: np.ndarray
    title: str  # above the grid
    note: str = ""  # below the grid
    mark: bool | None = None  # True: correct attempt, False: wrong, None: not an attempt


@dataclass
class Layout:
    width: int
    height: int
    headers: list[tuple[int, int, str]]  # (x, baseline y, text) above each row
    panels: list[Panel]


# ---------------------------------------------------------------- predictions


def load_predictions(path: str | Path, tasks: list[Task]) -> dict[str, list[Prediction]]:
    """Predictions for those of `tasks` in a submission JSON or an evaluation directory's submission.json
    (with its results.json, when there, for vote counts). A submitted task not among `tasks` is an error."""
    path = Path(path)
    results_path = None
    if path.is_dir():
        results_path = path / "results.json"
        path = path / "submission.json"
    sub = load_submission(path)
    if isinstance(sub, dict):
        by_id = {t.id: t for t in tasks}
        extra = next((task_id for task_id in sub if task_id not in by_id), None)
        if extra is not None:
            raise UserError(f"{path}: task {extra}: not in the dataset")
        validate_submission(sub, [by_id[task_id] for task_id in sub], str(path))
    else:
        validate_submission(sub, tasks, str(path))  # raises, naming the file
    preds = {task_id: [Prediction(tuple(np.array(e[k], dtype=np.uint8) for k in ATTEMPTS)) for e in entries]
             for task_id, entries in sub.items()}
    if results_path is not None and results_path.exists():
        _attach_results(preds, read_json(results_path), results_path)
    return preds


def _attach_results(preds: dict[str, list[Prediction]], results, path: Path) -> None:
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise UserError(f"{path}: expected an object with 'tasks'")
    for task_id, task_preds in preds.items():
        tests = results["tasks"].get(task_id)
        where = f"{path}: task {task_id}"
        if tests is None:
            continue  # no ranked candidates for this task: its attempts are drawn without votes
        if not isinstance(tests, list) or len(tests) != len(task_preds):
            raise UserError(f"{where}: expected a list of {len(task_preds)} test results")
        for i, (test, pred) in enumerate(zip(tests, task_preds)):
            try:
                pred.candidates = [(c["grid"], int(c["votes"]), float(c["halt_prob"])) for c in test["candidates"]]
                rank = test["correct_rank"]
            except (TypeError, KeyError, ValueError) as e:
                raise UserError(f"{where}: test {i}: bad or missing field ({e!r})") from None
            pred.correct_rank = None if rank is None else int(rank)


def solved_tests(task: Task, preds: list[Prediction]) -> list[bool] | None:
    """Per test input: does either attempt equal the true output (None when the outputs are hidden)."""
    if task.test_outputs is None:
        return None
    return [any(np.array_equal(a, y) for a in p.attempts) for p, y in zip(preds, task.test_outputs)]


# ---------------------------------------------------------------- layout


def _candidate_note(attempt: np.ndarray, candidates: list[tuple[list, int, float]]) -> str:
    """The attempt's rank, votes and halt probability among the candidates (empty if not among them)."""
    rows = attempt.tolist()
    for rank, (grid, votes, halt) in enumerate(candidates, 1):
        if grid == rows:
            return f"rank {rank}: {votes} votes, halt {halt:.2f}"
    return ""


def layout_task(task: Task, preds: list[Prediction] | None = None) -> Layout:
    """Rows of titled grids: one per demonstration pair, one per test input (with its predictions)."""
    assert preds is None or len(preds) == len(task.test_inputs), f"task {task.id}: {len(preds)} predictions"
    rows = []  # (header, [(title, grid, note, mark), ...])
    for i, (x, y) in enumerate(task.train):
        rows.append((f"demonstration {i + 1}", [("input", x, "", None), ("output", y, "", None)]))
    for i, x in enumerate(task.test_inputs):
        truth = None if task.test_outputs is None else task.test_outputs[i]
        panels = [("test input", x, "", None)]
        if truth is not None:
            panels.append(("true output", truth, "", None))
        header = f"test {i + 1}"
        if preds is not None:
            p = preds[i]
            for k, attempt in enumerate(p.attempts):
                mark = None if truth is None else np.array_equal(attempt, truth)
                title = f"attempt {k + 1}" + ("" if mark is None else f" {MARK_SYMBOL[mark]}")
                panels.append((title, attempt, _candidate_note(attempt, p.candidates), mark))
            if p.candidates:
                votes = ", ".join(str(v) for _, v, _ in p.candidates[:TOP_VOTES])
                header += f" \u00b7 top votes {votes} of {len(p.candidates)} candidates"
                rank = "not among them" if p.correct_rank is None else f"rank {p.correct_rank}"
                header += f" \u00b7 true output: {rank}" if truth is not None else ""
        rows.append((header, panels))

    side = max(max(g.shape) for _, panels in rows for _, g, _, _ in panels)
    cell = max(MIN_CELL, min(MAX_CELL, TARGET_SIDE // side))
    headers, placed, y, width = [], [], MARGIN, 0
    for header, panels in rows:
        headers.append((MARGIN, y + HEADER - 5, header))
        width = max(width, MARGIN + int(len(header) * CHAR_WIDTH * HEADER_FONT / FONT))
        grid_top = y + HEADER + TITLE
        x = MARGIN
        for title, grid, note, mark in panels:
            placed.append(Panel(x, grid_top, cell, grid, title, note, mark))
            text = max(len(title), len(note)) * CHAR_WIDTH
            x += int(max(grid.shape[1] * cell, text)) + GAP
        width = max(width, x - GAP)
        has_note = any(note for _, _, note, _ in panels)
        y = grid_top + max(g.shape[0] for _, g, _, _ in panels) * cell + (NOTE if has_note else 4) + ROW_GAP
    return Layout(width + MARGIN, y - ROW_GAP + MARGIN, headers, placed)


# ---------------------------------------------------------------- drawing


def task_svg(task: Task, preds: list[Prediction] | None = None) -> str:
    """The task picture as an SVG document (each grid a `<g class="grid">` of one rect per cell)."""
    import drawsvg as dw

    lay = layout_task(task, preds)
    d = dw.Drawing(lay.width, lay.height, font_family="sans-serif")
    d.append(dw.Rectangle(0, 0, lay.width, lay.height, fill="white"))
    for x, y, text in lay.headers:
        d.append(dw.Text(text, HEADER_FONT, x, y, font_weight="bold"))
    for p in lay.panels:
        h, w = p.grid.shape
        d.append(dw.Text(p.title, FONT, p.x, p.y - 5, fill="black" if p.mark is None else MARK_COLOUR[p.mark]))
        if p.mark is not None:
            d.append(dw.Rectangle(p.x - 3, p.y - 3, w * p.cell + 6, h * p.cell + 6,
                                  fill="none", stroke=MARK_COLOUR[p.mark], stroke_width=3))
        # grid lines come from each cell's thin outline; the stroke is set once on the group
        g = dw.Group(class_="grid", transform=f"translate({p.x},{p.y})", stroke=GRID_LINE, stroke_width=0.5)
        for (r, c), v in np.ndenumerate(p.grid):
            g.append(dw.Rectangle(c * p.cell, r * p.cell, p.cell, p.cell, fill=PALETTE[v]))
        d.append(g)
        if p.note:
            d.append(dw.Text(p.note, FONT, p.x, p.y + h * p.cell + NOTE - 3, fill="#444444"))
    return d.as_svg(header="")


def task_png(task: Task, path: str | Path, preds: list[Prediction] | None = None) -> None:
    """The task picture as a PNG of exactly the SVG's size in pixels."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    lay = layout_task(task, preds)
    dpi = 72  # 1 point = 1 pixel, so font sizes match the SVG's
    fig = Figure(figsize=(lay.width / dpi, lay.height / dpi), dpi=dpi, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    cmap = ListedColormap(PALETTE)
    for x, y, text in lay.headers:
        ax.text(x, y, text, fontsize=HEADER_FONT, fontweight="bold", va="baseline")
    for p in lay.panels:
        h, w = p.grid.shape
        right, bottom = p.x + w * p.cell, p.y + h * p.cell
        ax.text(p.x, p.y - 5, p.title, fontsize=FONT, va="baseline",
                color="black" if p.mark is None else MARK_COLOUR[p.mark])
        if p.mark is not None:
            ax.add_patch(Rectangle((p.x - 3, p.y - 3), w * p.cell + 6, h * p.cell + 6,
                                   fill=False, edgecolor=MARK_COLOUR[p.mark], linewidth=3))
        ax.imshow(p.grid, cmap=cmap, vmin=0, vmax=9, interpolation="nearest",
                  extent=(p.x, right, bottom, p.y))
        ax.hlines(p.y + np.arange(h + 1) * p.cell, p.x, right, colors=GRID_LINE, linewidth=0.5)
        ax.vlines(p.x + np.arange(w + 1) * p.cell, p.y, bottom, colors=GRID_LINE, linewidth=0.5)
        if p.note:
            ax.text(p.x, bottom + NOTE - 3, p.note, fontsize=FONT, color="#444444", va="baseline")
    # imshow rescales the axes; fix them to the layout's pixel frame, y pointing down as in SVG
    ax.set_xlim(0, lay.width)
    ax.set_ylim(lay.height, 0)
    ax.set_aspect("auto")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, facecolor="white"))


# ---------------------------------------------------------------- HTML


STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}
section.task{margin:1.5em 0;padding-top:.5em;border-top:2px solid #ccc;overflow-x:auto}
h2{font-size:1.1em}.solved{color:#1A7F37}.failed{color:#CF222E}.unknown{color:#666}"""


def _status(correct: list[bool] | None) -> str:
    if correct is None:
        return "unknown"
    return "solved" if all(correct) else "failed"


def task_section(task: Task, preds: list[Prediction] | None = None) -> str:
    """One task as an HTML section with its picture as inline SVG."""
    correct = None if preds is None else solved_tests(task, preds)
    status = "" if preds is None else _status(correct)
    summary = "" if correct is None else f" ({sum(correct)}/{len(correct)} test outputs)"
    return (f'<section class="task" id="task-{escape(task.id)}" data-status="{status}">\n'
            f'<h2>{escape(task.id)} <span class="{status}">{status}{summary}</span></h2>\n'
            f"{task_svg(task, preds)}</section>\n")


def _page(title: str, body: str) -> str:
    # the empty data: icon keeps the browser from requesting favicon.ico beside the file
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>\n'
            f'<link rel="icon" href="data:,"><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n')


def write_report(eval_dir: Path, tasks: list[Task], order: str = "failed-first") -> Path:
    """Write eval_dir/report.html from its submission.json and results.json; return its path.

    `tasks` holds (at least) every task of the submission, with test outputs when known. Tasks are
    ordered by the fraction of their test outputs solved, lowest first for "failed-first"; tasks whose
    outputs are hidden come last; ties keep the submission's order.
    """
    if order not in ORDERS:
        raise UserError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    eval_dir = Path(eval_dir)
    results_path = eval_dir / "results.json"
    results = read_json(results_path)
    # scores is null for tasks without solutions (their predictions are still drawn)
    if not isinstance(results, dict) or not isinstance(results.get("scores", ""), dict | None):
        raise UserError(f"{results_path}: expected an object with 'scores' (null when there are no solutions)")
    scores = results["scores"] or {}
    preds = load_predictions(eval_dir, tasks)
    by_id = {t.id: t for t in tasks}
    rows = []
    for task_id, p in preds.items():
        correct = solved_tests(by_id[task_id], p)
        rows.append((by_id[task_id], p, None if correct is None else sum(correct) / len(correct)))
    sign = 1 if order == "failed-first" else -1
    rows.sort(key=lambda r: (r[2] is None, 0 if r[2] is None else sign * r[2]))

    known = [r[2] for r in rows if r[2] is not None]
    solved = sum(f == 1 for f in known)
    head = [f"<h1>Evaluation: {escape(str(results.get('source', eval_dir)))}</h1>",
            f"<p>{len(rows)} tasks: {solved} solved, {len(known) - solved} failed"
            f"{'' if len(known) == len(rows) else f', {len(rows) - len(known)} with hidden outputs'}"
            f"; shown {order.replace('-', ' ')}.</p>",
            f'<table class="scores"><tr><th>score</th><th>value</th><th>{CONFIDENCE:.0%} interval</th></tr>']
    # results.json keeps the intervals apart, {score name: [low, high]}; files written before them have none
    intervals = scores.get("interval", {})
    if not isinstance(intervals, dict) or not all(isinstance(ci, list) and len(ci) == 2 and all(map(_number, ci))
                                                  for ci in intervals.values()):
        raise UserError(f"{results_path}: scores.interval: expected an object of score name -> [low, high]")
    for name, value in scores.items():
        if name == "interval":
            continue
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else escape(str(value))
        shown_ci = format_interval(*intervals[name]) if name in intervals else ""
        head.append(f"<tr><td>{escape(str(name))}</td><td>{shown}</td><td>{shown_ci}</td></tr>")
    head.append("</table>\n")
    body = "\n".join(head) + "".join(task_section(task, p) for task, p, _ in rows)
    out = eval_dir / "report.html"
    atomic_write_text(out, _page(f"arc-trm evaluation: {results.get('source', eval_dir)}", body))
    return out


def show(task_id: str, source: str | Path, out: str | Path, submission: str | Path | None = None) -> Path:
    """Draw one task of `source` (with a submission's or evaluation directory's predictions) to `out`:
    .svg, .png or .html (a page with the SVG inline)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in PICTURE_SUFFIXES:
        raise UserError(f"{out}: unknown picture format: use {', '.join(PICTURE_SUFFIXES)}")
    tasks = load_tasks(source)
    task = next((t for t in tasks if t.id == task_id), None)
    if task is None:
        raise UserError(f"task {task_id}: not in {source}")
    preds = None
    if submission is not None:
        preds = load_predictions(submission, tasks).get(task_id)
        if preds is None:
            raise UserError(f"{submission}: task {task_id}: not in the submission")
    if suffix == ".png":
        task_png(task, out, preds)
    elif suffix == ".svg":
        atomic_write_text(out, task_svg(task, preds))
    else:
        atomic_write_text(out, _page(f"ARC task {task_id}", task_section(task, preds)))
    return out


# ---------------------------------------------------------------- training curves


CURVES = (("loss", "loss"), ("exact_accuracy", "exact accuracy (train)"),
          ("halt_accuracy", "halt accuracy"), ("mean_steps", "mean supervision steps"),
          ("lr", "learning rate"), ("eval_exact_accuracy", "exact accuracy (eval)"))


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The logged lines of run_dir/metrics.jsonl that have a step (a half-written last line is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):  # a run still writing its last line
                continue
            raise UserError(f"{path}: line {n}: not valid JSON ({e})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {n}: expected a JSON object")
        if _number(row.get("step")):
            rows.append(row)
    if not rows:
        raise UserError(f"{path}: no logged steps")
    return rows


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_runs(run_dirs: list[str | Path], out: str | Path) -> Path:
    """One panel per metric against step, every run overlaid in its own colour; written to `out`."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    out = Path(out)
    if out.suffix.lower() not in PLOT_SUFFIXES:
        raise UserError(f"{out}: unknown plot format: use {', '.join(PLOT_SUFFIXES)}")
    runs = [(str(d), read_metrics(d)) for d in run_dirs]
    fig = Figure(figsize=(15, 8), dpi=100, layout="constrained")
    axes = fig.subplots(2, 3).flat
    for ax, (key, title) in zip(axes, CURVES):
        ax.set_title(title)
        ax.set_xlabel("step")
        plotted = []
        for colour, (_, rows) in enumerate(runs):
            points = [(r["step"], r[key]) for r in rows if _number(r.get(key))]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, color=f"C{colour}", marker="o" if len(points) < 30 else None)
                plotted += values
        if not plotted:
            ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", color="#888888")
        elif key == "loss" and min(plotted) > 0 and all(map(math.isfinite, plotted)):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    legend = [Line2D([], [], color=f"C{colour}", label=name) for colour, (name, _) in enumerate(runs)]
    fig.legend(handles=legend, loc="outside lower center", ncols=min(len(runs), 4))
    atomic_write(out, lambda tmp: fig.savefig(tmp, format=out.suffix.lower()[1:]))
    return out
