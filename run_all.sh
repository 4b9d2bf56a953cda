#!/usr/bin/env bash
# Runs every recipe on its example config: offline, on the packaged all-MiniLM-L6-v2 weights and the
# demo data the project generates. Extra arguments go to every recipe (e.g. --num_train_epochs 1).
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

python -m common.tools.demo_data demo_data
for recipe in recipes/*/; do
  [ -f "$recipe/run.py" ] && [ -f "$recipe/config.yaml" ] || continue
  echo "=== $(basename "$recipe")"
  python "$recipe/run.py" "$recipe/config.yaml" --overwrite_output_dir "$@"
done

python - <<'PY'
import glob, json
print("\nrecipe                 main results (outputs/<recipe>/all_results.json)")
for path in sorted(glob.glob("outputs/*/all_results.json")):
    results = json.load(open(path))
    shown = {k: round(v, 4) for k, v in results.items()
             if k.endswith(("accuracy", "f1_macro", "f1", "exact_match", "rmse")) and isinstance(v, float)}
    print(f"{path.split('/')[1]:<22} {shown}")
PY
