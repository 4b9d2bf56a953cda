"""Ensembling: average the class probabilities of several fine-tuned output directories of one task.

    python -m common.tools.ensemble outputs/seed1 outputs/seed2 outputs/seed3 --output_dir outputs/ensemble
    python -m common.tools.ensemble outputs/seed1 outputs/seed2 --test_file new.csv --output_dir outputs/ensemble

Without --test_file the members' own prediction files (`<split>_predictions.jsonl`, `predictions.jsonl` for
test) are averaged split by split; their rows must be the same examples in the same order. With --test_file
each member first predicts that file with its own recipe (the `# recipe:` line of its run_config.yaml), in
predict-only mode, into output_dir/members/<name>.

Supported: sequence-level classifiers with class probabilities (text classification single- or multi-label,
NLI, time-series classification), trained on the same labels in the same order. Writes, per split, the
members' row format with mean probabilities and `<split>_results.json`; then `ensemble_results.json` (last:
the ensemble's metrics beside each member's, recomputed from the files the same way, and the best member).
"""
import argparse
import dataclasses
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
import yaml

from common import args as arguments
from common import artifacts, metrics
from common.args import RECIPE_COMMENT, RESOLVED_CONFIG_NAME, read_config_file, run_recipe, run_settings
from common.data import TEST
from common.errors import UserError, exits_cleanly
from common.labels import MULTI, REGRESSION, SINGLE, LabelSet
from common.tasks import classification

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the folder holding common/
ENSEMBLE_FINISHED_MARKER = "ensemble_results.json"  # written last
SUPPORTED = ("sequence-level classifiers with class probabilities: text_classification (single- or multi-label), "
             "nli, time_series_classification")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass
class Member:
    path: str
    name: str
    labels: list  # names in id order (config.json id2label)
    problem_type: str
    architecture: str
    recipe: str  # the '# recipe:' line of run_config.yaml; None for runs saved before it existed
    config: dict  # run_config.yaml

    @property
    def threshold(self):
        return float(self.config.get("multi_label_threshold", 0.5))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m common.tools.ensemble", description=__doc__.split("\n\n")[0])
    parser.add_argument("members", nargs="+", metavar="OUT_DIR", help="output directories of fine-tuned runs")
    parser.add_argument("--output_dir", required=True, help="where the ensemble's files go")
    parser.add_argument("--test_file", help="predict this file with every member first (csv, tsv, json, jsonl, ...)")
    parser.add_argument("--recipe", help="recipe script for --test_file when a member's run_config.yaml names none")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a finished ensemble")

    def error(message):
        raise UserError(f"{message} (python -m common.tools.ensemble OUT_DIR [OUT_DIR ...] --output_dir DIR "
                        f"[--test_file FILE])")
    parser.error = error
    return parser.parse_args(argv)


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    members = [read_member(path, name) for path, name in zip(args.members, member_names(args.members))]
    check_compatible(members)
    check_output_dir(args, members)
    if args.test_file:
        files = predict_with_members(members, args)
    else:
        files = prediction_files(members)
    splits = {split: read_rows(members, by_member) for split, by_member in files.items()}  # all checked here
    main_metric = metrics.main_metric(members[0].problem_type)[0]
    summary = {"members": {m.name: m.path for m in members}, "main_metric": main_metric, "splits": {}}
    os.makedirs(args.output_dir, exist_ok=True)
    if os.path.exists(os.path.join(args.output_dir, ENSEMBLE_FINISHED_MARKER)):  # --overwrite_output_dir: no stale marker
        os.remove(os.path.join(args.output_dir, ENSEMBLE_FINISHED_MARKER))
    for split, rows_by_member in splits.items():
        rows = average(rows_by_member, members[0])
        artifacts.write_jsonl(artifacts.split_file(args.output_dir, split, artifacts.PREDICTIONS), rows)
        scores = {"ensemble": score(rows, members[0])}
        if scores["ensemble"] is None:  # no gold labels: predictions only
            continue
        artifacts.write_json(os.path.join(args.output_dir, f"{split}_results.json"), scores["ensemble"])
        scores.update({m.name: score(r, m) for m, r in zip(members, rows_by_member)})
        best = max((m.name for m in members), key=lambda name: scores[name][main_metric])
        summary["splits"][split] = {"ensemble": scores["ensemble"],
                                    "members": {m.name: scores[m.name] for m in members}, "best_member": best,
                                    f"{main_metric}_gain_over_best_member":
                                        scores["ensemble"][main_metric] - scores[best][main_metric]}
    artifacts.write_json(os.path.join(args.output_dir, ENSEMBLE_FINISHED_MARKER), summary)
    print_table(summary, args.output_dir)


# ---------------------------------------------------------------- members


def member_names(paths):
    """Folder names, numbered where two are the same (runs/a/out, runs/b/out)."""
    names = [os.path.basename(os.path.normpath(os.path.abspath(p))) for p in paths]
    return [f"{n}_{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def read_member(path, name) -> Member:
    config_path = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise UserError(f"{path}: not a directory; give the output directories of fine-tuned runs")
    if not os.path.isfile(config_path):
        raise UserError(f"{path}: no config.json; give the --output_dir of a finished training run")
    model_config = read_config_file(config_path, "model config")
    architecture = (model_config.get("architectures") or ["?"])[0]
    problem_type = model_config.get("problem_type") or SINGLE
    task = next((t for suffix, t in (("ForTokenClassification", "token classification (NER)"),
                                     ("ForQuestionAnswering", "question answering")) if architecture.endswith(suffix)),
                "regression" if problem_type == REGRESSION else None)
    if task is None and not architecture.endswith(("ForSequenceClassification", "PatchTSTForClassification")):
        task = f"{architecture}"
    if task:
        raise UserError(f"{path}: a {task} model; ensembling supports {SUPPORTED}")
    id2label = model_config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    return Member(path, name, labels, problem_type, architecture, run_recipe(path), run_settings(path))


def check_compatible(members):
    first = members[0]
    for other in members[1:]:
        different_recipe = bool(other.recipe and first.recipe and other.recipe != first.recipe)
        if different_recipe or (other.architecture, other.problem_type) != (first.architecture, first.problem_type):
            raise UserError(f"members of different tasks: {first.path} is {first.recipe or first.architecture} "
                            f"({first.problem_type}), {other.path} is {other.recipe or other.architecture} "
                            f"({other.problem_type}); ensemble runs of one recipe and task")
        if other.labels != first.labels:
            raise UserError(f"label sets differ: {first.path} has {first.labels}, {other.path} has {other.labels}; "
                            f"ensemble only runs trained on the same labels in the same order (--label_list)")


def check_output_dir(args, members):
    out = os.path.abspath(args.output_dir)
    if any(os.path.abspath(m.path) == out for m in members):
        raise UserError(f"--output_dir {args.output_dir} is a member's directory; choose another one")
    if os.path.exists(os.path.join(out, ENSEMBLE_FINISHED_MARKER)) and not args.overwrite_output_dir:
        raise UserError(f"--output_dir {args.output_dir} already holds an ensemble ({ENSEMBLE_FINISHED_MARKER}); pass "
                        f"--overwrite_output_dir or choose another directory")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--output_dir {args.output_dir} is a file; choose a directory")


# ---------------------------------------------------------------- prediction files


def prediction_files(members) -> dict:
    """{split: [file of each member]} for the splits every member has predicted."""
    found = []
    for m in members:
        splits = {f: artifacts.split_of(f, artifacts.PREDICTIONS) for f in sorted(os.listdir(m.path))}
        found.append({split: f for f, split in splits.items() if split})
    common = [s for s in sorted(found[0], key=lambda s: (s == TEST, s)) if all(s in f for f in found)]
    if not common:
        raise UserError(f"{', '.join(m.path for m in members)}: no prediction file (<split>_predictions.jsonl) that "
                        f"every member has; run them with --do_eval/--do_predict, or pass --test_file")
    skipped = sorted(set().union(*found) - set(common))
    if skipped:
        print(f"note: not every member has predictions for {', '.join(skipped)}: left out", file=sys.stderr)
    return {s: [os.path.join(m.path, f[s]) for m, f in zip(members, found)] for s in common}


def predict_with_members(members, args) -> dict:
    """Each member predicts --test_file with its own recipe, predict-only, into output_dir/members/<name>."""
    if not os.path.isfile(args.test_file):
        raise UserError(f"--test_file {args.test_file}: file not found")
    commands = []
    for m in members:  # everything checked before the first member runs
        recipe = args.recipe or m.recipe
        if not recipe:
            raise UserError(f"{m.path}/{RESOLVED_CONFIG_NAME} names no recipe (a run from before the "
                            f"'{RECIPE_COMMENT.strip()}' line); pass --recipe recipes/<task>/run.py")
        script = recipe if os.path.isabs(recipe) else os.path.join(ROOT, recipe)
        if not os.path.isfile(script):
            raise UserError(f"{m.path}: its recipe {recipe} is not found; pass --recipe PATH")
        if not any(os.path.isfile(os.path.join(m.path, w)) for w in WEIGHTS):
            raise UserError(f"{m.path}: no full model there (a --lora run with --merge_lora false?); ensemble "
                            f"output directories that hold model.safetensors")
        commands.append((m, script))
    members_dir = os.path.join(args.output_dir, "members")
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        for m, script in commands:
            out = os.path.join(members_dir, m.name)
            training_only = recipe_training_only(script)  # back to their defaults: predicting needs none of them
            config = {k: v for k, v in m.config.items() if k not in training_only}
            if "problem_type" in config:  # unlabelled test files cannot tell multi-label from single-label
                config["problem_type"] = m.problem_type
            config_path = os.path.join(tmp, f"{m.name}.yaml")
            with open(config_path, "w") as fh:
                yaml.safe_dump(config, fh, sort_keys=False)
            command = [sys.executable, script, config_path, "--model_name_or_path", m.path, "--do_train", "false",
                       "--do_eval", "false", "--do_predict", "true", "--test_file", args.test_file,
                       "--label_list", *m.labels, "--output_dir", out, "--overwrite_output_dir", "true",
                       "--report_to", "none", "--disable_tqdm", "true"]
            print(f"{m.name}: predicting {args.test_file}", file=sys.stderr)
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                shutil.rmtree(members_dir, ignore_errors=True)  # no half-done ensemble left behind
                lines = proc.stderr.strip().splitlines() or ["(no output)"]
                reason = next((line for line in reversed(lines) if line.startswith("error: ")), lines[-1])
                raise UserError(f"{m.path} could not predict {args.test_file}: {reason.removeprefix('error: ')}")
            files.append(artifacts.split_file(out, TEST, artifacts.PREDICTIONS))
    return {TEST: files}


def recipe_training_only(script) -> set:
    """The settings a recipe's argument classes mark training-only (common.args.TRAINING_ONLY): what only
    training, evaluation or the run's own data need. Loading the script defines its classes; main() runs
    only as __main__."""
    namespace = runpy.run_path(script, run_name="ensemble_member")
    classes = [c for c in namespace.values() if isinstance(c, type) and dataclasses.is_dataclass(c)]
    return arguments.training_only_flags(arguments.ModelArguments, arguments.RunArguments, *classes)


def read_rows(members, paths) -> list:
    """Each member's rows, checked: the label set's probabilities on every row, the same examples in order."""
    rows_by_member = []
    for m, path in zip(members, paths):
        rows = []
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise UserError(f"{path}: line {number} is not JSON; was the run interrupted? rerun it") from None
                if set(rows[-1].get("probabilities") or {}) != set(m.labels):
                    raise UserError(f"{path}: line {number} has no probabilities for the labels {m.labels}")
        rows_by_member.append(rows)
    first, first_path = rows_by_member[0], paths[0]
    for rows, path in zip(rows_by_member[1:], paths[1:]):
        if len(rows) != len(first):
            raise UserError(f"{path} has {len(rows)} rows, {first_path} {len(first)}: members must predict the "
                            f"same examples")
        for number, (a, b) in enumerate(zip(first, rows), 1):
            if any(a.get(k) != b.get(k) for k in ("id", "input", "label")):
                raise UserError(f"{path}: row {number} (id {b.get('id')!r}) is not row {number} of {first_path} "
                                f"(id {a.get('id')!r}): members must predict the same examples in the same order")
    return rows_by_member


# ---------------------------------------------------------------- averaging and scores


def average(rows_by_member, member) -> list:
    """Member rows with the mean probabilities and the prediction they give; inputs and gold as they were."""
    names = member.labels
    mean = np.mean([[[row["probabilities"][n] for n in names] for row in rows] for rows in rows_by_member], axis=0)
    label_set = LabelSet(names, member.problem_type)
    return [classification.prediction_row(row["id"], p, label_set, member.threshold, row.get("input"), row.get("label"))
            for row, p in zip(rows_by_member[0], mean)]


def score(rows, member):
    """common.metrics on the rows' predictions against their gold labels; None without gold labels."""
    if not all("label" in row for row in rows):
        return None
    names, index = member.labels, {n: i for i, n in enumerate(member.labels)}
    if member.problem_type == MULTI:
        hot = lambda labels: [int(n in labels) for n in names]  # noqa: E731
        result = metrics.multi_label([hot(r["predicted_labels"]) for r in rows], [hot(r["label"]) for r in rows])
    else:
        unknown = next((r["label"] for r in rows if r["label"] not in index), None)
        if unknown is not None:
            raise UserError(f"gold label {unknown!r} is not one of the members' labels {names}")
        result = metrics.classification([index[r["predicted_label"]] for r in rows],
                                        [index[r["label"]] for r in rows], len(names))
    return {**result, "samples": len(rows)}


def print_table(summary, output_dir):
    main_metric = summary["main_metric"]
    columns = [main_metric] + [c for c in ("f1_macro", "f1_micro") if c != main_metric]
    print(f"{'split':<24} {'model':<24} " + " ".join(f"{c:>10}" for c in columns))
    for split, result in summary["splits"].items():
        rows = [("ensemble", result["ensemble"])] + [
            (name + (" (best)" if name == result["best_member"] else ""), s) for name, s in result["members"].items()]
        for name, s in rows:
            print(f"{split:<24} {name:<24} " + " ".join(f"{s[c]:>10.4f}" for c in columns))
    if not summary["splits"]:
        print("no gold labels in these predictions: no metrics, predictions only")
    print(f"written to {output_dir}")


if __name__ == "__main__":
    main()
