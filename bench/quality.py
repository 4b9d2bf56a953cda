"""Quality over several seeds on real public data (../shared/data), with the default model.

    python bench/quality.py rte --seeds 42 43 44                 # the bench config, 3 seeds
    python bench/quality.py rte_hf_defaults --seeds 42 43 44     # HF run_glue's defaults, through the recipe
    python bench/quality.py conll2003 --seeds 42 --num_train_epochs 5   # flags after the name override
    python bench/quality.py rte_qnli --seeds 42 43 44   # two stages (FIRST_STAGES), each with the run's seed

Every finished run is appended at once to bench/quality_runs.jsonl (metrics, wall time, machine load), and
bench/quality_results.md is written anew from it: one row per configuration and flag overrides, mean ±
standard deviation and the spread over its seeds. A configuration's seeds run one after another; stopping
the script keeps every run that finished.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNS_FILE, RESULTS_FILE = ROOT / "bench/quality_runs.jsonl", ROOT / "bench/quality_results.md"
# name: (recipe, what it reports: result key -> column title). Each name has bench/configs/<name>.yaml.
TASKS = {
    "sst2": ("text_classification", {"eval_accuracy": "dev accuracy"}),
    "rte": ("nli", {"eval_accuracy": "dev accuracy"}),
    "conll2003": ("ner", {"predict_f1": "test entity F1", "eval_f1": "dev entity F1"}),
    "squad": ("qa", {"eval_f1": "dev F1", "eval_exact_match": "dev EM"}),
}
IN_POINTS = {"squad"}  # tasks whose metrics come in points already (the official SQuAD script's scale)
RUNS = {name: TASKS[name.split("_")[0]] for name in
        ("sst2", "sst2_hf_defaults", "rte", "rte_hf_defaults", "rte_qnli", "conll2003", "conll2003_hf_defaults",
         "squad", "squad_hf_defaults", "squad_run_qa_defaults")}
# name: (its first stage's config, the command that writes that stage's data). The first stage trains with the
# run's seed (the same recipe) into bench/out/<first stage>_seed<seed>, and the run starts from that model.
FIRST_STAGES = {"rte_qnli": ("qnli_squad", ["bench/qnli_from_squad.py"])}


def run_one(name, seed, overrides) -> dict:
    recipe, reported = RUNS[name]
    out = f"bench/out/{name}{_slug(overrides)}_seed{seed}"
    command = [f"recipes/{recipe}/run.py", f"bench/configs/{name}.yaml", *overrides, "--seed", str(seed),
               "--output_dir", out, "--overwrite_output_dir", "true"]
    config = config_version(name)  # before the run: the files it reads
    load_before, start = os.getloadavg()[0], time.time()
    first_stage = None
    if name in FIRST_STAGES:
        first, prepare = FIRST_STAGES[name]
        first_out = f"bench/out/{first}_seed{seed}"
        _run(prepare)
        first_stage = [f"recipes/{recipe}/run.py", f"bench/configs/{first}.yaml", "--seed", str(seed),
                       "--output_dir", first_out, "--overwrite_output_dir", "true"]
        _run(first_stage)
        command[2:2] = ["--model_name_or_path", first_out]  # before the overrides: a flag given there wins
    first_wall = time.time() - start
    _run(command)
    wall = time.time() - start
    results = json.loads((ROOT / out / "all_results.json").read_text())
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "name": name, "config": config,
            "overrides": overrides, "seed": seed, "command": "python " + " ".join(command),
            "metrics": {key: results[key] for key in reported if key in results},
            "first_stage": first_stage and "python " + " ".join(first_stage),
            "first_stage_minutes": round(first_wall / 60, 2) if first_stage else None,
            "wall_minutes": round(wall / 60, 2), "train_samples": results.get("train_samples"),
            "epochs": results.get("epoch"), "load_before": round(load_before, 1),
            "load_after": round(os.getloadavg()[0], 1), "machine": machine()}


def _run(command):
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def summary(runs) -> str:
    groups = {}
    for run in runs:
        groups.setdefault((run["name"], run["config"], tuple(run["overrides"]), run["machine"]), []).append(run)
    lines = ["# Quality over seeds", "",
             "Written by `python bench/quality.py NAME --seeds ...` from bench/quality_runs.jsonl (one line per "
             "finished run). Mean ± standard deviation over the seeds, then the lowest and highest; scores in "
             "points (x100; SQuAD's come in points). Wall time: mean minutes per run, with the machine's 1-minute load average when "
             "the runs started and ended (2 cores: a load above 2 means other work shared them); a two-stage "
             "row's time holds both stages, each trained with the run's seed. A config's "
             "version in brackets is a hash of its settings (`config_version` in bench/quality.py): an edited "
             "config's runs get a row of their own.", ""]
    for task, (_, reported) in TASKS.items():
        rows = [(key, group) for key, group in groups.items() if RUNS[key[0]] == TASKS[task]]
        if not rows:
            continue
        titles = list(reported.values())
        lines += [f"## {task}", "", "| config | flags | seeds | " + " | ".join(titles) +
                  " | wall time | load | machine | dates |", "|---|---|---|" + "---|" * len(titles) + "---|---|---|---|"]
        scale = 1 if task in IN_POINTS else 100
        for (name, config, overrides, _), group in rows:
            scores = [_spread([scale * r["metrics"][key] for r in group if key in r["metrics"]]) for key in reported]
            walls = [r["wall_minutes"] for r in group]
            loads = [r[k] for r in group for k in ("load_before", "load_after") if r[k] is not None]
            dates = sorted(r["date"][:10] for r in group)
            stages = f"`bench/configs/{FIRST_STAGES[name][0]}.yaml`, then " if name in FIRST_STAGES else ""
            lines.append(f"| {stages}`bench/configs/{name}.yaml` ({config}) | {' '.join(overrides) or '-'} | "
                         f"{', '.join(str(r['seed']) for r in group)} | " + " | ".join(scores) +
                         f" | {statistics.mean(walls):.1f} min | {min(loads):.1f}–{max(loads):.1f} | "
                         f"{group[-1]['machine']} | {dates[0]}{'' if dates[0] == dates[-1] else ' – ' + dates[-1]} |")
        lines.append("")
    return "\n".join(lines)


def config_version(name) -> str:
    """A short hash of bench/configs/<name>.yaml's settings (comments aside), and its first stage's: runs of an
    edited config stay apart."""
    names = [FIRST_STAGES[name][0], name] if name in FIRST_STAGES else [name]
    settings = [yaml.safe_load((ROOT / f"bench/configs/{n}.yaml").read_text()) for n in names]
    settings = settings[-1] if len(settings) == 1 else settings  # one config's hash as before
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:7]


def _spread(values) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"**{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}** ({min(values):.1f}–{max(values):.1f})"


def _slug(overrides) -> str:
    return "".join(f"_{part.lstrip('-')}" for part in overrides).replace("/", "-")[:80]


def machine() -> str:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else "no bf16"
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")),
                 platform.processor())
    return f"{os.cpu_count()}-core {model.split()[0]} CPU, {isa}"


def read_runs() -> list:
    return [json.loads(line) for line in RUNS_FILE.read_text().splitlines() if line.strip()] if RUNS_FILE.exists() else []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(RUNS), nargs="?", help="bench/configs/<name>.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--summary", action="store_true", help="only write bench/quality_results.md again")
    known, overrides = parser.parse_known_args()
    if not known.summary:
        if known.name is None:
            parser.error("name a configuration, or pass --summary")
        for seed in known.seeds:
            run = run_one(known.name, seed, overrides)
            with RUNS_FILE.open("a") as fh:  # opened after the run: a file replaced meanwhile still gets it
                fh.write(json.dumps(run) + "\n")
            RESULTS_FILE.write_text(summary(read_runs()))
    RESULTS_FILE.write_text(summary(read_runs()))
    print(RESULTS_FILE.read_text())
