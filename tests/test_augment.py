"""--augment: label-preserving copies of the training split only. The operations on real data (real argument
parsing, the real tokenizer, common.tasks.tagging's entity reader, common.tasks.series_data's scaling), one recipe run end to end
with a tiny model, and bad input: one line, exit 2, nothing written."""
import runpy
import subprocess
import sys

import datasets
import numpy as np
import pytest

from common import args
from common.data import RawData
from common.errors import UserError
from common.tasks import series_data, tagging
from common.techniques import augment
from conftest import FAST, OFFLINE_ENV, ROOT, read_json, read_jsonl, write_csv, write_jsonl

WORDS = "the quick brown fox jumps over the lazy dog again and again today".split()


def _cfg(tmp_path, *flags, do_train=True):
    return args.parse(args.DataArguments, ["--output_dir", str(tmp_path / "out"), "--report_to", "none",
                                           *(["--do_train"] if do_train else []), *map(str, flags)])


def _texts(n=12):
    rows = [{"text": " ".join(WORDS[i % 5:]), "label": ["pos", "neg", "neu"][i % 3], "id": i} for i in range(n)]
    return datasets.Dataset.from_list(rows)


def _raw(train, **others):
    splits = datasets.DatasetDict(train=train, **others)
    return RawData(splits, {name: f"{name}.jsonl" for name in splits})


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from common.modeling import default_model_path
    return AutoTokenizer.from_pretrained(default_model_path())


def test_text_copies_keep_labels_and_never_touch_evaluation_or_test(tokenizer, tmp_path):
    train, dev, test = _texts(12), _texts(5), _texts(4).remove_columns("label")
    raw = augment.training_texts(_raw(train, validation=dev, test=test), _cfg(
        tmp_path, "--augment", "delete,swap", "mask", "--augment_factor", "3", "--augment_probability", "0.3"),
        ["text"], tokenizer)
    out = raw.splits["train"].to_list()
    assert len(out) == 4 * 12 and out[:12] == train.to_list()  # originals first, unchanged
    for k, row in enumerate(out[12:]):
        original = out[k % 12]
        assert (row["label"], row["id"]) == (original["label"], original["id"])
    assert sum(row["text"] != out[k % 12]["text"] for k, row in enumerate(out[12:])) >= 30
    assert any(tokenizer.mask_token in row["text"] for row in out[12:])
    assert raw.splits["validation"].to_list() == dev.to_list() and raw.splits["test"].to_list() == test.to_list()

    again = augment.training_texts(_raw(_texts(12)), _cfg(tmp_path, "--augment", "delete,swap,mask",
                                   "--augment_factor", "3", "--augment_probability", "0.3"), ["text"], tokenizer)
    assert again.splits["train"].to_list() == out  # seeded
    other_seed = augment.training_texts(_raw(_texts(12)), _cfg(tmp_path, "--augment", "delete,swap,mask",
                                        "--augment_factor", "3", "--augment_probability", "0.3", "--seed", "7"),
                                        ["text"], tokenizer)
    assert other_seed.splits["train"].to_list() != out


def test_each_text_operation_alone():
    rng, swaps = np.random.default_rng(0), 0
    for _ in range(50):
        deleted = augment.delete_words(WORDS, 0.5, rng)
        assert 0 < len(deleted) < len(WORDS)
        it = iter(WORDS)
        assert all(w in it for w in deleted)  # an ordered subsequence
        swapped = augment.swap_words(WORDS, 0.2, rng)
        assert sorted(swapped) == sorted(WORDS)
        swaps += swapped != WORDS
        masked = augment.mask_span(WORDS, 0.25, rng, "[MASK]")
        where = [i for i, w in enumerate(masked) if w == "[MASK]"]
        assert len(masked) == len(WORDS) and len(where) == 3 and where == list(range(where[0], where[0] + 3))
        assert [w for i, w in enumerate(masked) if i not in where] == [w for i, w in enumerate(WORDS) if i not in where]
    assert swaps >= 45  # a swap of two equal words ('the', 'again') changes nothing
    assert augment.delete_words(["one"], 1.0, rng) == ["one"]  # never every word
    assert augment.mask_span(["one"], 1.0, rng, "[MASK]") == ["one"]
    assert augment.mask_span(["a", "b"], 1.0, rng, "[MASK]").count("[MASK]") == 1


SENTENCES = [  # every mention's text occurs in one sentence only, so a replacement's origin is known
    (["Ann", "Lee", "met", "Bob", "in", "Rome"], ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]),
    (["Carl", "went", "to", "New", "York", "City"], ["B-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC"]),
    (["Acme", "Corp", "hired", "Dora"], ["B-ORG", "I-ORG", "O", "B-PER"]),
    (["nothing", "here"], ["O", "O"]),
    (["Paris", "and", "Lima", "are", "far"], ["B-LOC", "O", "B-LOC", "O", "O"]),
]


def _bioes(tags):
    """IOB2 -> BIOES, to test the other scheme on the same sentences."""
    out = []
    for i, tag in enumerate(tags):
        last = i + 1 == len(tags) or not tags[i + 1].startswith("I-")
        out.append(tag if tag == "O" else ("S-" if tag[0] == "B" else "E-") + tag[2:] if last else tag)
    return out


@pytest.mark.parametrize("scheme", ["IOB2", "BIOES"])
def test_mentions_are_replaced_by_same_type_from_other_sentences_with_aligned_valid_tags(tmp_path, scheme):
    rows = [{"tokens": w, "ner_tags": t if scheme == "IOB2" else _bioes(t), "pos": ["X"] * len(w)} for w, t in SENTENCES]
    dev = datasets.Dataset.from_list(rows[:2])
    raw = tagging.training_mentions(_raw(datasets.Dataset.from_list(rows), validation=dev),
                                    _cfg(tmp_path, "--augment", "mentions", "--augment_factor", "4"),
                                    "tokens", "ner_tags", scheme)
    home = {}  # (type, text) -> the sentence it comes from
    for s, row in enumerate(rows):
        for e in tagging.entities(row["ner_tags"], row["tokens"], scheme):
            home[e["type"], e["text"]] = s
    out = raw.splits["train"].to_list()
    assert len(out) == 5 * len(rows) and raw.splits["train"].column_names == ["tokens", "ner_tags"]
    replaced = 0
    for k, row in enumerate(out[len(rows):]):
        s = k % len(rows)
        words, tags = row["tokens"], row["ner_tags"]
        assert len(words) == len(tags)
        if scheme == "IOB2":
            assert tagging.to_iob2(tags) == tags
        else:
            assert tagging._invalid_bioes(tags) == 0 and tags[-1][0] in "OES"
        found = tagging.entities(tags, words, scheme)
        original = tagging.entities(rows[s]["ner_tags"], rows[s]["tokens"], scheme)
        assert [e["type"] for e in found] == [e["type"] for e in original]  # one mention for one, same type
        assert any(e != o for e, o in zip(found, original)) or s == 3  # each copy with a mention changes
        for e, o in zip(found, original):
            assert (e["type"], e["text"]) in home  # a real mention of this type
            if e["text"] != o["text"]:
                replaced += 1
                assert home[e["type"], e["text"]] != s  # from another sentence
        outside = [w for i, w in enumerate(words) if tags[i] == "O"]
        assert outside == [w for w, t in zip(rows[s]["tokens"], rows[s]["ner_tags"]) if t == "O"]
    assert replaced >= 16
    assert raw.splits["validation"].to_list() == dev.to_list()


def _waves(n, length=40, channels=2):
    rng = np.random.default_rng(1)
    t = np.linspace(0, 1, length)
    return [np.stack([np.sin(2 * np.pi * (1 + i % 2) * t + c) * 3 + 10 + rng.normal(0, 0.1, length)
                      for c in range(channels)]) for i in range(n)]


def test_series_copies_keep_shape_and_labels_and_survive_scaling(tmp_path):
    arrays = {"train": _waves(6), "test": _waves(3)}
    rows = {split: datasets.Dataset.from_dict({series_data.SERIES: [a.tolist() for a in values],
                                               "label": [f"c{i % 2}" for i in range(len(values))]})
            for split, values in arrays.items()}
    test_before = [a.copy() for a in arrays["test"]]
    raw, out = series_data.training_series(_raw(rows["train"], test=rows["test"]), dict(arrays), _cfg(
        tmp_path, "--augment", "jitter,scale,slice", "--augment_factor", "6", "--augment_probability", "0.2"))
    assert len(out["train"]) == len(raw.splits["train"]) == 7 * 6
    assert raw.splits["train"]["label"] == [f"c{i % 2}" for i in range(6)] * 7
    for k, copy in enumerate(out["train"][6:]):
        assert copy.shape == (2, 40) and np.isfinite(copy).all()
        assert np.allclose(raw.splits["train"][series_data.SERIES][6 + k], copy)  # rows and arrays agree
        # Still different after the recipe's per-series z-normalisation (a constant factor would not be).
        assert not np.allclose(series_data.prepare(copy, 40), series_data.prepare(arrays["train"][k % 6], 40), atol=1e-3)
    assert all(np.array_equal(a, b) for a, b in zip(out["test"], test_before)) and raw.splits["test"] is rows["test"]

    rng = np.random.default_rng(0)
    x = arrays["train"][0]
    assert np.allclose(series_data.scale(x, 1e-9, rng), x) and not np.allclose(series_data.jitter(x, 0.2, rng), x)
    sliced = series_data.slice_window(x, 0.5, rng)  # half the series, stretched back: smoother, same ends' range
    assert sliced.shape == x.shape and x.min() - 1e-9 <= sliced.min() and sliced.max() <= x.max() + 1e-9


@pytest.mark.parametrize("flags, expected", [
    (["--augment", "shuffle"], "--augment shuffle: unknown operation; for text this recipe takes delete, swap, mask"),
    (["--augment", "delete,jitter"], "--augment jitter: a time-series operation; for text this recipe takes delete, swap, mask"),
    (["--augment", "delete", "--augment_factor", "0"], "--augment_factor 0: give the number of augmented copies"),
    (["--augment", "delete", "--augment_probability", "1.5"], "--augment_probability 1.5: must be above 0 and at most 1"),
    (["--augment", "delete", "--augment_probability", "0"], "--augment_probability 0.0: must be above 0"),
], ids=["unknown", "other-task", "factor-0", "probability-above-1", "probability-0"])
def test_bad_flags_are_one_line_errors(tokenizer, tmp_path, flags, expected):
    with pytest.raises(UserError) as error:
        augment.training_texts(_raw(_texts(3)), _cfg(tmp_path, *flags), ["text"], tokenizer)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_mask_needs_a_mask_token(tmp_path):
    from transformers import AutoTokenizer

    from common.modeling import default_model_path
    no_mask = AutoTokenizer.from_pretrained(default_model_path())
    no_mask.mask_token = None  # as GPT-2's or T5's tokenizer
    with pytest.raises(UserError, match=r"--augment mask: the tokenizer \w+ has no mask token; use delete or swap"):
        augment.training_texts(_raw(_texts(3)), _cfg(tmp_path, "--augment", "delete,mask"), ["text"], no_mask)


def test_without_do_train_and_in_qa(tmp_path):
    with pytest.raises(UserError, match="--augment alters only the training split: pass --do_train"):
        tagging.training_mentions(_raw(_texts(3)), _cfg(tmp_path, "--augment", "mentions", do_train=False), "t", "l", "IOB2")
    with pytest.raises(UserError, match=r"--augment delete: no label-preserving operation for extractive QA"):
        augment.refuse(_cfg(tmp_path, "--augment", "delete"), "extractive QA", "answers are spans")
    augment.refuse(_cfg(tmp_path, "--augment", ""), "extractive QA", "answers are spans")  # '' clears


# Each recipe's --augment line is in place: an operation of another task stops it there, in one line.
RECIPE_CASES = [
    ("nli", "pairs.jsonl", [{"premise": f"p {i}", "hypothesis": "h", "label": "a" if i % 2 else "b"} for i in range(4)],
     "mentions", "--augment mentions: a NER operation; for text this recipe takes delete, swap, mask"),
    ("ner", "ner.jsonl", [{"tokens": ["Ann", "sings"], "ner_tags": ["B-PER", "O"]}] * 4,
     "delete", "--augment delete: a text operation; for NER this recipe takes mentions"),
    ("qa", "qa.jsonl", [{"id": f"q{i}", "question": "Who?", "context": "Ann sings.",
                         "answers": {"text": ["Ann"], "answer_start": [0]}} for i in range(4)],
     "swap", "--augment swap: no label-preserving operation for extractive QA"),
    ("time_series_classification", "ts.jsonl", [{"series": [0.0, 1.0, 2.0, 1.0] * 4, "label": "a"}] * 4,
     "mask", "--augment mask: a text operation; for time series this recipe takes jitter, scale, slice"),
]


@pytest.mark.parametrize("task, name, rows, op, expected", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_each_recipe_checks_its_operations(tiny_model, tmp_path, capsys, monkeypatch, task, name, rows, op, expected):
    write_jsonl(tmp_path / name, rows)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["run.py", "--train_file", str(tmp_path / name), "--augment", op, "--do_train",
                                      "--output_dir", str(out), "--model_name_or_path", tiny_model])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "recipes" / task / "run.py"))["main"]()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and last.startswith("error: ") and expected in last, last
    assert not out.exists()


def _sentiment(n, offset=0):
    return [{"text": f"{'a great' if i % 2 else 'a dull'} film number {i} with a plot", "label": "pos" if i % 2 else "neg"}
            for i in range(offset, offset + n)]


def test_recipe_trains_on_originals_plus_copies_and_evaluates_the_same_dev_set(tiny_model, tmp_path):
    """Real runs: training and, started alongside it, the three bad flags as a user sees them."""
    write_csv(tmp_path / "train.csv", _sentiment(24))
    write_csv(tmp_path / "dev.csv", _sentiment(10, 100))
    common = ["--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.csv", "--do_train"]
    out = tmp_path / "out"
    good = [*common, "--validation_file", tmp_path / "dev.csv", "--do_eval", "--augment", "delete,mask",
            "--augment_factor", "2", "--augment_probability", "0.2", "--num_train_epochs", "1", "--output_dir", out, *FAST]
    bad = {"unknown": (["--augment", "crop"], "error: --augment crop: unknown operation; for text this recipe takes "
                                               "delete, swap, mask"),
           "other-task": (["--augment", "mentions"], "error: --augment mentions: a NER operation; for text"),
           "factor-0": (["--augment", "swap", "--augment_factor", "0"], "error: --augment_factor 0: give the number")}
    launch = lambda argv: subprocess.Popen(  # noqa: E731
        [sys.executable, str(ROOT / "recipes/text_classification/run.py"), *map(str, argv)], cwd=ROOT, env=OFFLINE_ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = {case: launch([*common, *flags, "--output_dir", tmp_path / case]) for case, (flags, _) in bad.items()}
    procs["good"] = launch(good)
    done = {case: (proc, *proc.communicate(timeout=600)) for case, proc in procs.items()}

    proc, _, stderr = done.pop("good")
    assert proc.returncode == 0, stderr[-3000:]
    assert "augmentation (delete, mask, factor 2, p 0.2): added 48 altered copies to the 24 training examples" in stderr
    results = read_json(out / "all_results.json")
    assert results["train_samples"] == 3 * 24 and results["eval_samples"] == 10
    assert [r["input"] for r in read_jsonl(out / "validation_predictions.jsonl")] == [r["text"] for r in _sentiment(10, 100)]
    assert "augment_factor: 2" in (out / "run_config.yaml").read_text()  # the resolved config repeats it
    for case, (proc, _, stderr) in done.items():
        last = stderr.strip().splitlines()[-1]
        assert proc.returncode == 2 and last.startswith(bad[case][1]), (case, stderr[-2000:])
        assert "Traceback" not in stderr and not (tmp_path / case).exists()
