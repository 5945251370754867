"""The training-log importer: a constructed folder of logs, its errors, and the real OLMo ladder."""

from __future__ import annotations

import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.training_logs import clean_name, read_logs

from .conftest import SHARED_DATA, real_data_path

HEADER = ["_step", "throughput/total_tokens", "eval/c4_en-validation/CrossEntropyLoss",
          "eval/downstream_bpb/hellaswag_val_rc_5shot_bpb", "eval/downstream/hellaswag_val_rc_5shot_len_norm",
          "eval/downstream/arc_easy_val_rc_5shot_len_norm", "eval/downstream/arc_easy_test_rc_5shot_len_norm"]


def _log(folder, name, rows):
    pd.DataFrame(rows, columns=HEADER).to_csv(folder / f"{name}.csv", index=False)


@pytest.fixture
def logs(tmp_path):
    _log(tmp_path, "small-1x", [[100, 1e8, 4.0, 1.2, 0.30, 0.40, 0.41], [200, 2e8, 3.8, 1.1, 0.32, 0.42, 0.43]])
    _log(tmp_path, "big-1x", [[100, 1e8, 3.9, 1.1, 0.31, 0.45, 0.46], [300, 3e8, 3.5, 0.9, 0.40, 0.50, 0.52]])
    return tmp_path


def test_clean_names_follow_the_convention():
    assert clean_name("eval/c4_en-validation/CrossEntropyLoss") == ("c4_loss", None)
    assert clean_name("eval/downstream/hellaswag_val_rc_5shot_len_norm") == ("hellaswag_val_acc", "val")
    assert clean_name("optim/learning_rate_group0") == ("learning_rate_group0", None)


def test_final_evaluation_per_run_with_clean_metric_columns(logs):
    runs = read_logs(logs, {"small": 1e8, "big": "1B"})
    assert list(runs["name"]) == ["big-1x", "small-1x"]
    assert runs["params"].tolist() == [1e9, 1e8]
    assert runs["tokens"].tolist() == [3e8, 2e8]
    # one split: no split in the name; two splits (arc_easy val and test): kept
    assert {"c4_loss", "hellaswag_bpb", "hellaswag_acc", "arc_easy_val_acc", "arc_easy_test_acc"} <= set(runs)
    assert runs.loc[runs["name"] == "big-1x", "hellaswag_acc"].item() == 0.40


def test_every_evaluation_and_loss_column(logs):
    runs = read_logs(logs, {"small": 1e8, "big": 1e9}, every=True, loss="c4_loss")
    assert len(runs) == 4 and (runs["loss"] == runs["c4_loss"]).all()


def test_tokens_from_steps_times_batch_size(tmp_path):
    pd.DataFrame({"step": [1, 2], "batch_size_in_tokens": [1000, 1000], "acc": [0.3, 0.4]}).to_csv(
        tmp_path / "a.csv", index=False)
    assert read_logs(tmp_path, {"a": 1e6})["tokens"].item() == 2000


def test_errors_name_file_row_and_column(logs, tmp_path):
    with pytest.raises(bs.RunTableError, match=r"small-1x.*no size in the mapping"):
        read_logs(logs, {"big": 1e9})
    _log(tmp_path, "back", [[1, 2e8, 3, 1, 0.3, 0.4, 0.4], [2, 1e8, 3, 1, 0.3, 0.4, 0.4]])
    with pytest.raises(bs.RunTableError, match=r"back.csv: row 3, column 'throughput/total_tokens'.*does not increase"):
        read_logs(tmp_path, {"back": 1e8})
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "back.csv", index=False)
    with pytest.raises(bs.RunTableError, match="no step column"):
        read_logs(tmp_path, {"back": 1e8})


def test_cli_import_logs_writes_the_run_table(logs, tmp_path, capsys):
    sizes = tmp_path / "sizes.toml"
    sizes.write_text('small = "100M"\nbig = 1e9\n')
    out = tmp_path / "runs.csv"
    assert main(["import-logs", str(logs), "--sizes", str(sizes), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ["name", "params", "tokens", "step"]
    assert "hellaswag_acc" in table and table["params"].min() == 1e8


@pytest.mark.real_data
def test_real_ladder_folder():
    folder = real_data_path(SHARED_DATA / "olmo_ladder" / "190M-1xC.csv").parent
    sizes = {"190M": 190_354_176, "370M": 371_262_464, "760M": 758_220_288, "1B": 1_279_395_840,
             "3B": 3_169_537_280}
    runs = read_logs(folder, sizes)
    assert len(runs) == 30
    for task in ("hellaswag", "piqa", "csqa", "socialiqa"):
        assert runs[f"{task}_acc"].between(0, 1).all() and (runs[f"{task}_bpb"] > 0).all()
    final = runs.set_index("name").loc["190M-1xC"]
    assert final["tokens"] == 3_812_622_336 and final["step"] == 7272
    assert 3.5 < final["c4_loss"] < 3.7
