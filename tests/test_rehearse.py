"""`arc-trm rehearse`: the Kaggle notebook run locally on what `submit` stages, scored, and the caller's
environment left as it was."""

import json
import subprocess
import sys

import pytest

from arc_trm.cli import main


def _arc_trm_location() -> str:
    """Where this environment imports arc_trm from (outside the checkout: `python -c` looks in the working
    directory first)."""
    return subprocess.run([sys.executable, "-c", "import arc_trm; print(arc_trm.__file__)"], cwd="/",
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_rehearsal_scores_its_submission_and_leaves_the_environment_alone(tmp_path, small_files, other_checkpoint,
                                                                          wheel_cache, cli, capsys):
    """Three unseen tasks, a minute: the reported score is `arc-trm score`'s of DIR/submission.json, every
    phase is timed, the unused share is the budget less the time taken, and the caller's arc_trm is the one
    it was. (How the plan spends the budget: test_notebook's tests of kaggle_run.adapt_seconds.)"""
    _, challenges, _ = small_files
    before = _arc_trm_location()
    out = tmp_path / "rehearsal"
    result = cli("rehearse", "--checkpoint", other_checkpoint, "--tasks", challenges, "--budget", 60, "--out", out,
                 "--wheels-from", wheel_cache, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)

    assert main(["score", str(out / "submission.json"), "--solutions", str(challenges), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert (report["score"], report["correct_outputs"], report["outputs"]) == (
        scored["score"], scored["correct_outputs"], scored["outputs"]) and report["valid"]
    assert set(report["phases"]) == {"install", "fallback", "probe", "adapt", "predict"}
    assert all(report["phases"][phase] > 0 for phase in ("install", "probe", "adapt", "predict")), report["phases"]
    assert report["budget"] == 60 and report["unused"] == pytest.approx((60 - report["seconds"]) / 60), report
    assert (out / "executed.ipynb").is_file() and "adapted checkpoint" in (out / "notebook.log").read_text()

    assert _arc_trm_location() == before
    assert main(["submit", "--dry-run", "--kernel", "alice/arc-trm-test", "--checkpoint", str(other_checkpoint),
                 "--staging", str(tmp_path / "stage"), "--wheels-from", wheel_cache]) == 0


@pytest.mark.parametrize("args, fragments", [
    (["--budget", "0"], ["--budget 0"]),
    (["--checkpoint", "nowhere"], ["--checkpoint nowhere"]),
    (["--tasks", "no-such-dataset"], ["unknown task source", "no-such-dataset"]),
])
def test_bad_input_stops_with_one_line(tmp_path, placeholder_run, small_files, cli_error, args, fragments):
    options = {"--checkpoint": placeholder_run, "--tasks": small_files[1], "--budget": "60",
               "--out": tmp_path / "out"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    cli_error(["rehearse", *(x for kv in options.items() for x in kv)], *fragments)
    assert not (tmp_path / "out").exists()  # nothing staged
