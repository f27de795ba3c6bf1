"""Submissions: the official score on real data, every malformed file refused with a named line and
exit 2 by `arc-trm validate` / `arc-trm score` (in-process; one run of each as a subprocess), and atomic
writes."""

import copy
import json

import pytest

from arc_trm.atomic import atomic_write
from arc_trm.cli import main
from arc_trm.errors import UserError
from arc_trm.submission import (
    fallback_submission,
    load_submission,
    make_submission,
    score_submission,
    validate_submission,
    write_submission,
)
from arc_trm.tasks import load_tasks

SCORE_KEYS = {"score", "interval", "task_score", "tasks", "outputs", "correct_outputs", "per_task"}


@pytest.fixture(scope="module")
def arc1_eval():
    return load_tasks("arc1-eval")


def _perfect(tasks) -> dict:
    return make_submission(tasks, {t.id: [(o, o) for o in t.test_outputs] for t in tasks})


def test_true_outputs_score_exactly_one(tmp_path, capsys, arc1_eval):
    path = tmp_path / "submission.json"
    write_submission(path, _perfect(arc1_eval))
    assert main(["score", str(path), "--solutions", "arc1-eval", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == SCORE_KEYS
    assert report["score"] == 1.0 and report["task_score"] == 1.0
    assert (report["tasks"], report["outputs"], report["correct_outputs"]) == (400, 419, 419)
    assert len(report["per_task"]) == 400 and set(report["per_task"].values()) == {1.0}

    assert main(["score", str(path), "--solutions", "arc1-eval"]) == 0
    text = capsys.readouterr().out
    assert "Kaggle score: 1.0000 (419/419 test outputs; 95% interval 0.99-1.00)" in text
    assert "per-task score: 1.0000 (mean over 400 tasks)" in text

    assert main(["validate", str(path), "--tasks", "arc1-eval"]) == 0
    assert capsys.readouterr().out.strip() == "valid: 400 tasks, 419 test outputs"


def test_score_and_validate_run_as_commands(tmp_path, small_files, cli):
    """The installed `arc-trm` script end to end: output on stdout, exit 0 (and 2 on an invalid file)."""
    tasks, challenges, _ = small_files
    path = tmp_path / "submission.json"
    write_submission(path, _perfect(tasks))
    score = cli("score", path, "--solutions", challenges, "--json")
    assert score.returncode == 0 and json.loads(score.stdout)["correct_outputs"] == 4, score.stderr
    path.write_text("[]")
    invalid = cli("validate", path, "--tasks", challenges)
    assert invalid.returncode == 2 and invalid.stderr.startswith("arc-trm validate: error: "), invalid.stderr


def test_one_wrong_output_scores_n_minus_one_over_n(arc1_eval):
    submission = _perfect(arc1_eval)
    task = next(t for t in arc1_eval if len(t.test_outputs) == 2)
    submission[task.id][1] = {"attempt_1": [[0]], "attempt_2": [[1, 2]]}
    result = score_submission(submission, arc1_eval)
    n = result["outputs"]
    assert result["correct_outputs"] == n - 1 and result["score"] == (n - 1) / n
    assert result["per_task"][task.id] == 0.5
    assert result["task_score"] == pytest.approx((len(arc1_eval) - 0.5) / len(arc1_eval))


def test_either_attempt_counts(small_files):
    tasks, _, _ = small_files
    submission = make_submission(tasks, {t.id: [([[0]], o) for o in t.test_outputs] for t in tasks})
    assert score_submission(submission, tasks)["score"] == 1.0


def test_fallback_is_valid_and_copies_inputs(arc1_eval):
    submission = fallback_submission(arc1_eval)
    validate_submission(submission, arc1_eval)
    task = arc1_eval[0]
    assert submission[task.id][0]["attempt_1"] == task.test_inputs[0].tolist()


def test_make_submission_keeps_base_then_falls_back(small_files):
    tasks, _, _ = small_files
    predicted, from_base, fallback = tasks
    base = {from_base.id: [{"attempt_1": [[7]], "attempt_2": [[8]]}]}
    submission = make_submission(tasks, {predicted.id: [(predicted.test_outputs[0], [[3]])]}, base=base)
    assert list(submission) == [t.id for t in tasks]
    assert submission[predicted.id] == [{"attempt_1": predicted.test_outputs[0].tolist(), "attempt_2": [[3]]}]
    assert submission[from_base.id] == base[from_base.id]
    assert submission[fallback.id] == fallback_submission([fallback])[fallback.id]


def test_make_submission_refuses_mismatched_predictions(small_files):
    tasks, _, _ = small_files
    with pytest.raises(ValueError, match="not among the tasks"):
        make_submission(tasks, {"nope": [([[0]], [[0]])]})
    with pytest.raises(ValueError, match=f"task {tasks[2].id}: 1 predictions for 2 test inputs"):
        make_submission(tasks, {tasks[2].id: [([[0]], [[0]])]})


def _bad(case: str, submission: dict, ids: list[str]):
    """The malformed variant `case` of a valid submission for the three small tasks (ids a, b, c)."""
    a, _, c = ids
    if case == "not an object":
        return [submission]
    if case == "missing task":
        del submission[c]
    elif case == "unknown task":
        submission["zzz99999"] = submission[a]
    elif case == "too few test outputs":
        submission[c].pop()
    elif case == "too many test outputs":
        submission[a].append(submission[a][0])
    elif case == "entry not a dict":
        submission[c][1] = [[0]]
    elif case.startswith("missing attempt"):
        del submission[c][1][f"attempt_{case[-1]}"]
    else:
        submission[c][1]["attempt_2"] = {
            "ragged grid": [[1, 2], [3]],
            "value 10": [[1, 10]],
            "negative value": [[-1]],
            "float value": [[1.0]],
            "string value": [["1"]],
            "empty grid": [],
            "31 rows": [[0]] * 31,
            "31 columns": [[0] * 31],
        }[case]
    return submission


# case -> fragments of the error line besides the file ("{a}", "{c}": the first and third task ids)
BAD_SUBMISSIONS = {
    "not an object": ["expected an object"],
    "missing task": ["task {c}", "missing"],
    "unknown task": ["task zzz99999", "not a task of the challenges"],
    "too few test outputs": ["task {c}", "1 entries for 2 test inputs"],
    "too many test outputs": ["task {a}", "2 entries for 1 test inputs"],
    "entry not a dict": ["task {c}: test 1", "not an object"],
    "missing attempt_1": ["task {c}: test 1", "missing 'attempt_1'"],
    "missing attempt_2": ["task {c}: test 1", "missing 'attempt_2'"],
    "ragged grid": ["task {c}: test 1: attempt_2", "row 1 has length 1"],
    "value 10": ["task {c}: test 1: attempt_2", "outside 0-9"],
    "negative value": ["task {c}: test 1: attempt_2", "outside 0-9"],
    "float value": ["task {c}: test 1: attempt_2", "not an integer"],
    "string value": ["task {c}: test 1: attempt_2", "not an integer"],
    "empty grid": ["task {c}: test 1: attempt_2", "empty grid"],
    "31 rows": ["task {c}: test 1: attempt_2", "31 rows"],
    "31 columns": ["task {c}: test 1: attempt_2", "31 columns"],
}


@pytest.mark.parametrize("case", BAD_SUBMISSIONS)
def test_malformed_submission_exits_2(tmp_path, small_files, cli_error, case):
    tasks, challenges, _ = small_files
    ids = [t.id for t in tasks]
    bad = _bad(case, copy.deepcopy(_perfect(tasks)), ids)
    path = tmp_path / "bad_submission.json"
    path.write_text(json.dumps(bad))
    fragments = [str(path)] + [f.format(a=ids[0], c=ids[2]) for f in BAD_SUBMISSIONS[case]]

    with pytest.raises(UserError) as error:
        validate_submission(load_submission(path), tasks, file=str(path))
    assert all(f in str(error.value) for f in fragments), str(error.value)
    cli_error(["validate", path, "--tasks", challenges], *fragments)
    if case in ("missing task", "missing attempt_2", "value 10"):  # score validates before scoring
        cli_error(["score", path, "--solutions", challenges], *fragments)


def test_not_json_exits_2(tmp_path, small_files, cli_error):
    _, challenges, _ = small_files
    path = tmp_path / "truncated.json"
    path.write_text('{"a": [{"attempt_1": [[1')
    with pytest.raises(UserError, match="not valid JSON"):
        load_submission(path)
    cli_error(["validate", path, "--tasks", challenges], str(path), "not valid JSON")
    cli_error(["score", path, "--solutions", challenges], str(path), "not valid JSON")


def test_score_needs_solutions(tmp_path, small_files, capsys, cli_error):
    tasks, challenges, solutions = small_files
    path = tmp_path / "submission.json"
    write_submission(path, _perfect(tasks))
    alone = tmp_path / "hidden_challenges.json"  # no hidden_solutions.json beside it
    alone.write_text(challenges.read_text())
    cli_error(["score", path, "--solutions", alone], str(alone), f"task {tasks[0].id}", "no test outputs")
    # an explicit solutions file, whatever its name
    elsewhere = tmp_path / "answers.json"
    elsewhere.write_text(solutions.read_text())
    assert main(["score", str(path), "--solutions", str(alone), "--solutions-file", str(elsewhere), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 1.0


def test_score_against_the_solutions_file_alone(tmp_path, small_files, capsys):
    """The file a Kaggle user has in hand: {task_id: [grid, ...]} as --solutions, no challenges needed."""
    tasks, _, solutions = small_files
    path = tmp_path / "submission.json"
    submission = _perfect(tasks)
    submission[tasks[2].id][1] = {"attempt_1": [[0]], "attempt_2": [[1]]}  # 3 of 4 test outputs right
    write_submission(path, submission)
    assert main(["score", str(path), "--solutions", str(solutions), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["tasks"], report["outputs"], report["correct_outputs"]) == (3, 4, 3)
    assert report["per_task"][tasks[2].id] == 0.5
    assert main(["score", str(path), "--solutions", str(solutions)]) == 0
    assert "Kaggle score: 0.7500 (3/4 test outputs; 95% interval 0.19-0.99)" in capsys.readouterr().out

    # its tasks are counted from the outputs, so a submission with an entry short is still refused
    submission[tasks[2].id].pop()
    write_submission(path, submission)
    assert main(["score", str(path), "--solutions", str(solutions)]) == 2
    assert f"task {tasks[2].id}: 1 entries for 2 test inputs" in capsys.readouterr().err
    # a second solutions file has nothing to attach to
    assert main(["score", str(path), "--solutions", str(solutions), "--solutions-file", str(solutions)]) == 2
    assert "a solutions file already" in capsys.readouterr().err


@pytest.mark.parametrize("solutions, fragments", [
    ({"a": [[[1]]], "b": []}, ["task b", "non-empty list of output grids"]),
    ({"a": [[[1, 10]]]}, ["task a: solution[0]", "outside 0-9"]),
])
def test_a_bad_solutions_file_alone_is_named(tmp_path, capsys, solutions, fragments):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(solutions))
    assert main(["score", str(tmp_path / "unused.json"), "--solutions", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"arc-trm score: error: {path}: ") and err.count("\n") == 1, err
    assert all(f in err for f in fragments), err


def test_atomic_write_leaves_no_temp_files(tmp_path, small_files):
    tasks, _, _ = small_files
    path = tmp_path / "submission.json"
    first = fallback_submission(tasks)
    write_submission(path, first)
    write_submission(path, _perfect(tasks))  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["submission.json"]
    assert load_submission(path) == _perfect(tasks)
    # a write that fails, before or part way through the temp file, keeps the previous file whole
    with pytest.raises(TypeError):
        write_submission(path, {tasks[0].id: [{"attempt_1": object()}]})

    def half_then_crash(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write('{"half": [')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_crash)
    assert [p.name for p in tmp_path.iterdir()] == ["submission.json"]
    assert load_submission(path) == _perfect(tasks)
