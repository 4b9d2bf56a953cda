"""Real public data (GLUE SST-2 from ../shared/data), when that folder is beside the clone: a short run, and the
sentence groups the SST-2 search holds out (bench/sst2_groups.py)."""
import pytest

from conftest import FAST, ROOT, SHARED_DATA, read_json, run_recipe

SST2 = SHARED_DATA / "sst2"
pytestmark = pytest.mark.skipif(not SST2.is_dir(), reason="../shared/data/sst2 is not beside this clone")


def test_sst2_subset_learns_real_sentiment(tmp_path):
    out = tmp_path / "out"
    run_recipe("text_classification", "bench/configs/sst2.yaml", "--output_dir", out, "--max_train_samples", "3000",
               "--num_train_epochs", "1", "--eval_strategy", "no", *FAST)
    results = read_json(out / "all_results.json")
    # all-MiniLM-L6-v2 after 3,000 sentences: well above the 50.9% majority class on the official dev set.
    assert results["eval_samples"] == 872 and results["eval_accuracy"] >= 0.75, results


def test_sst2_phrases_join_the_sentence_they_come_from():
    """bench/sst2_groups.py: every row joins a longer row (its sentence) that contains it as a run of words, so
    holding out a group holds out the sentence's phrases with it."""
    import sys

    import pandas as pd
    sys.path.insert(0, str(ROOT / "bench"))
    from sst2_groups import sentence_groups

    assert sentence_groups(["kids , spirit", "a film of kids , spirit and heart", "a film", "other words"]) == [1, 1, 1, 3]
    texts = pd.read_csv(SST2 / "train.tsv", sep="\t", quoting=3, keep_default_na=False).sentence.tolist()
    groups = sentence_groups(texts)
    roots = set(groups)
    # The treebank's training split has 8,544 sentences, some of them repeated as phrases of longer ones.
    assert 6000 < len(roots) < 8544
    for row in range(0, len(texts), 97):
        assert f" {' '.join(texts[row].split())} " in f" {' '.join(texts[groups[row]].split())} "
