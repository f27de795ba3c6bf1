"""`arc-trm bench`: one real run at tiny settings prints the figures as one JSON object."""

import json

import pytest


@pytest.mark.slow
def test_bench_json_prints_the_figures(cli):
    result = cli("bench", "--json", "--seconds", "0.1", "--batch-size", "2", "--windows", "1", "--warmup", "1",
                 "--views", "1", "--infer-steps", "1")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("train_ratio", "infer_ratio", "train_fixed_examples_per_s", "train_bucketed_examples_per_s",
                "infer_fixed_views_per_s", "infer_bucketed_views_per_s", "train_fixed_peak_mb",
                "train_bucketed_peak_mb", "load_avg_start", "load_avg_end"):
        assert key in figures, key
    assert figures["train_fixed_examples_per_s"] > 0 and figures["infer_bucketed_views_per_s"] > 0
    assert figures["infer_fixed_share"] == {"30": 1.0}  # the fixed layout puts every view on 30x30
    assert abs(sum(figures["infer_bucketed_share"].values()) - 1) < 1e-3
    # every training bucket of arc1-train was timed, weighted by its share of the examples
    assert set(figures["train_bucketed_share"]) == {"7", "10", "15", "20", "25", "30"}
    assert abs(sum(figures["train_bucketed_share"].values()) - 1) < 1e-3
    per_example = "train_{}_mean_step_peak_mb_per_example"
    assert figures[per_example.format("bucketed")] < figures[per_example.format("fixed")]


def test_bench_rejects_a_bad_batch_size(cli_error):
    cli_error(["bench", "--batch-size", "0"], "--batch-size")
