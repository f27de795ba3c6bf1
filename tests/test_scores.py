"""Scores with their uncertainty: the binomial interval, in results.json, on the command line and in the report."""

import json

import numpy as np
import pytest

from arc_trm.cli import main
from arc_trm.infer import Ballot, submission_from_votes
from arc_trm.pipeline import PASS_AT, print_scores, results
from arc_trm.submission import binomial_interval, make_submission, score_submission, write_submission
from arc_trm.tasks import Task, load_tasks


@pytest.mark.parametrize("k, n, low, high", [
    (0, 10, 0.0, 1 - 0.025 ** (1 / 10)),  # no success: the upper bound solves (1 - p)^n = 0.025
    (10, 10, 0.025 ** (1 / 10), 1.0),  # all successes: the lower bound solves p^n = 0.025
    (4, 16, 0.0727, 0.5238),  # Clopper-Pearson tables
    (14, 53, 0.1526, 0.4033),
])
def test_binomial_interval_is_the_exact_clopper_pearson_interval(k, n, low, high):
    assert binomial_interval(k, n) == pytest.approx((low, high), abs=1e-4)


def test_the_interval_narrows_as_the_set_grows():
    small, large = binomial_interval(1, 4), binomial_interval(100, 400)
    assert small[0] < 0.25 < small[1] and large[0] < 0.25 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 5


def _four_test_inputs():
    """Four one-output tasks: the truth ranked 1st, 2nd, 3rd and not at all (pass@1 1/4, pass@2 2/4, ...)."""
    rng = np.random.default_rng(0)
    truths = [rng.integers(0, 10, (2, 2)).astype(np.uint8) for _ in range(4)]
    tasks = [Task(f"t{i}", [(g, g)], [g], [g]) for i, g in enumerate(truths)]
    votes = {}
    for task, truth, rank in zip(tasks, truths, [1, 2, 3, None]):
        ballot = Ballot()
        for k in range(3):  # three wrong candidates with 10, 9, 8 votes
            ballot.add(np.full((3, 3), k, dtype=np.uint8), 0.5, votes=10 - k)
        if rank is not None:  # ties the candidate at its rank in votes, beats it on halt probability
            ballot.add(truth, 0.9, votes=11 - rank)
        votes[task.id] = [ballot]
    return tasks, votes


def test_results_give_an_interval_for_every_count_of_test_outputs(capsys, tmp_path):
    tasks, votes = _four_test_inputs()
    res = results(tasks, votes, submission_from_votes(tasks, votes), "crafted")
    scores = res["scores"]
    assert [scores[f"pass@{k}"] for k in PASS_AT] == [0.25, 0.5, 0.75, 0.75, 0.75] and scores["score"] == 0.5
    names = [*(f"pass@{k}" for k in PASS_AT), "oracle", "score"]
    assert list(scores["interval"]) == names  # task_score, a mean of fractions, has none
    for name in names:
        assert scores["interval"][name] == list(binomial_interval(round(scores[name] * 4), 4))
    json.dumps(res)  # results.json holds plain lists

    print_scores(res, tmp_path, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("Kaggle score (pass@2): 0.5000 (2/4 test outputs; 95% interval 0.07-0.93); "
                        "per-task score 0.5000")
    assert lines[1].startswith("pass@1 0.250 [0.01-0.81]  pass@2 0.500 [0.07-0.93]")
    assert lines[1].endswith("oracle 0.750 [0.19-0.99] (95% intervals in brackets)")
    print_scores(res, tmp_path, as_json=True)
    assert json.loads(capsys.readouterr().out)["scores"]["interval"]["score"] == scores["interval"]["score"]


def test_score_prints_the_interval(capsys, tmp_path):
    tasks = load_tasks("arc1-eval:max_side=5")  # a few dozen small tasks
    right = {t.id: [(o, o) for o in t.test_outputs] for t in tasks[:4]}
    path = tmp_path / "submission.json"
    write_submission(path, make_submission(tasks, right))
    expected = score_submission(make_submission(tasks, right), tasks)
    assert expected["correct_outputs"] >= 4

    assert main(["score", str(path), "--solutions", "arc1-eval:max_side=5", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["interval"] == list(binomial_interval(expected["correct_outputs"], expected["outputs"]))
    assert printed["interval"][0] < printed["score"] < printed["interval"][1]

    assert main(["score", str(path), "--solutions", "arc1-eval:max_side=5"]) == 0
    low, high = printed["interval"]
    assert (f"Kaggle score: {printed['score']:.4f} ({printed['correct_outputs']}/{printed['outputs']} test outputs; "
            f"95% interval {low:.2f}-{high:.2f})") in capsys.readouterr().out
