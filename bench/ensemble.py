"""Does an ensemble of seeds beat its members? (issue 22: SST-2 short of its goal.)

Each member is the bench config trained with one seed; the project's ensembling tool (common.tools.ensemble)
averages their class probabilities. First on held-out training sentences (the choice), then on dev (the report):

    python bench/sst2_groups.py --hold_out
    python bench/ensemble.py sst2 --seeds 42 43 44 --held_out   # train_part.tsv, 20,000 rows; heldout.tsv
    python bench/ensemble.py sst2 --seeds 42 43 44              # the bench config as it is; dev

Recipe flags after the options apply to every member (and name a folder of their own).

--held_out trains on bench/out/sst2_grouped/train_part.tsv and scores bench/out/sst2_grouped/heldout.tsv: whole
sentence groups, the same rows for every seed (the recipe's --validation_split_by draws them with the seed).
Members go to bench/out/ensemble/<name>[_held_out]/seed<S>; a finished member is reused, so a stopped run
continues. Each finished ensemble is appended to bench/ensemble_results.md: accuracy of members and ensemble (on
held-out rows also on the whole sentences alone, as dev holds), and the members' training minutes.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from quality import TASKS, _slug, machine  # noqa: E402

RESULTS_FILE = ROOT / "bench/ensemble_results.md"
GROUPED = "bench/out/sst2_grouped"
HELD_OUT = {"sst2": ["--train_file", f"{GROUPED}/train_part.tsv", "--validation_file", f"{GROUPED}/heldout.tsv",
                     "--max_train_samples", "20000", "--eval_strategy", "no"]}


def train_member(name, seed, folder, overrides) -> float:
    """Its training minutes (the Trainer's train_runtime), also for a member that had finished before."""
    results = ROOT / folder / "all_results.json"
    if not results.exists():
        recipe = TASKS[name][0]
        subprocess.run([sys.executable, f"recipes/{recipe}/run.py", f"bench/configs/{name}.yaml", *overrides,
                        "--seed", str(seed), "--output_dir", folder, "--overwrite_output_dir", "true"],
                       cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(results.read_text())["train_runtime"] / 60


def whole_sentences(path):
    """Row numbers of the held-out file's whole sentences: the longest row of each sentence group."""
    import pandas as pd
    rows = pd.read_csv(path, sep="\t", quoting=3, keep_default_na=False)
    words = rows.sentence.str.split().str.len()
    longest = rows[words == words.groupby(rows.sentence_group).transform("max")]
    return set(longest.drop_duplicates("sentence_group").index)


def accuracy(predictions, rows=None):
    """(points, rows scored): the predictions file's rows (those numbered in rows, if given) whose label was
    predicted."""
    lines = predictions.read_text().splitlines()
    chosen = [json.loads(line) for i, line in enumerate(lines) if rows is None or i in rows]
    hits = [row["predicted_label"] == row["label"] for row in chosen]
    return 100 * sum(hits) / len(hits), len(hits)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(HELD_OUT), help="bench/configs/<name>.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--held_out", action="store_true", help="train and score on the held-out split of train")
    args, flags = parser.parse_known_args()
    overrides = (HELD_OUT[args.name] if args.held_out else []) + flags  # flags after the options win
    if args.held_out and not (ROOT / GROUPED / "heldout.tsv").exists():
        sys.exit(f"{GROUPED}/heldout.tsv not found: run python bench/sst2_groups.py --hold_out first")
    base = f"bench/out/ensemble/{args.name}{'_held_out' if args.held_out else ''}{_slug(flags)}"
    members = [f"{base}/seed{seed}" for seed in args.seeds]
    minutes = [train_member(args.name, seed, folder, overrides) for seed, folder in zip(args.seeds, members)]
    subprocess.run([sys.executable, "-m", "common.tools.ensemble", *members, "--output_dir", f"{base}/ensemble",
                    "--overwrite_output_dir"], cwd=ROOT, check=True)
    models = [(f"seed {seed}", folder) for seed, folder in zip(args.seeds, members)]
    models.append(("ensemble", f"{base}/ensemble"))
    columns = {"accuracy": None}
    if args.held_out:  # dev holds whole sentences; most held-out rows are their phrases
        columns["whole sentences only"] = whole_sentences(ROOT / GROUPED / "heldout.tsv")
    scored = {name: [accuracy(ROOT / folder / "validation_predictions.jsonl", rows) for rows in columns.values()]
              for name, folder in models}
    scores = {name: [points for points, _ in results] for name, results in scored.items()}
    sizes = [size for _, size in scored["ensemble"]]
    means = [sum(scores[name][i] for name, _ in models[:-1]) / len(members) for i in range(len(columns))]
    lines = [f"## {args.name}, {'held-out training sentences' if args.held_out else 'dev'}, "
             f"{datetime.date.today()}, {machine()}", "",
             f"`python bench/ensemble.py {args.name} --seeds {' '.join(map(str, args.seeds))}"
             f"{' --held_out' if args.held_out else ''}{''.join(' ' + f for f in flags)}`"
             + (f" (members: {' '.join(overrides)})" if overrides else ""), "",
             "| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in scores[name]) + " |" for name, _ in models[:-1]]
    lines += ["| members' mean | " + " | ".join(f"{v:.2f}" for v in means) + " |",
              "| **ensemble (mean probabilities)** | " + " | ".join(
                  f"**{v:.2f}** ({v - m:+.2f})" for v, m in zip(scores["ensemble"], means)) + " |", "",
              f"Rows: {', '.join(f'{c} {n:,}' for c, n in zip(columns, sizes))}. Members "
              f"trained {', '.join(f'{m:.1f}' for m in minutes)} min each (train_runtime).", "", ""]
    with RESULTS_FILE.open("a") as fh:
        if fh.tell() == 0:
            fh.write("# Seed ensembles against their members\n\nAppended by bench/ensemble.py, one section per "
                     "finished ensemble; scores in points (x100).\n\n")
        fh.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
