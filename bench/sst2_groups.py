"""SST-2's training file with a `sentence_group` column, so a search can hold out whole sentences (issue 22).

GLUE's SST-2 train holds the treebank's phrases as rows of their own: "kids , spirit" and the review sentence it
comes from are both training rows. A random held-out part therefore scores phrases whose sentence (or whose own
sub-phrases) a trial trained on, which rewards memorising; dev holds whole sentences the model never saw. Here
each row joins the group of the longest row that contains it as a run of words (its sentence, as far as the file
shows), and `--validation_split_by sentence_group` holds out whole groups:

    python bench/sst2_groups.py          # writes bench/out/sst2_grouped/train.tsv
    python bench/choose.py sst2 --study sst2_grouped --train_file bench/out/sst2_grouped/train.tsv \\
        --validation_split_by sentence_group --trials 6

`--hold_out` also writes a fixed split of whole groups (every fifth one by first appearance: 20% of the
groups), train_part.tsv and heldout.tsv, for runs that must be scored on the same held-out rows whatever their
seed, such as the members of an ensemble (the recipe's --validation_split_by draws its groups with the seed):

    python bench/sst2_groups.py --hold_out   # also train_part.tsv and heldout.tsv beside train.tsv

A phrase found in several sentences ("the film") joins the first, longest one; such phrases are short and
common, so what one sentence shares with another this way is no more than what dev shares with train.
"""
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
TARGET = ROOT / "bench" / "out" / "sst2_grouped" / "train.tsv"


def runs_of_words(words):
    """Every contiguous run of words, as text."""
    return (" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1))


def sentence_groups(texts):
    """For each text, the index of the longest text that contains it as a run of words (itself if none)."""
    words = [text.split() for text in texts]
    group_of_run = {}
    groups = [None] * len(texts)
    for row in sorted(range(len(texts)), key=lambda i: -len(words[i])):
        key = " ".join(words[row])
        if key in group_of_run:
            groups[row] = group_of_run[key]
        else:  # a sentence no longer row contains: a group of its own, claiming its runs of words
            groups[row] = row
            for run in runs_of_words(words[row]):
                group_of_run.setdefault(run, row)
    return groups


def held_out(groups):
    """True for the rows of every fifth group, in order of first appearance: whole groups, 20% of them."""
    order = {group: i for i, group in enumerate(dict.fromkeys(groups))}
    return groups.map(order) % 5 == 0


def main():
    hold_out = sys.argv[1:] == ["--hold_out"]
    if sys.argv[1:] and not hold_out:
        sys.exit(f"usage: python bench/sst2_groups.py [--hold_out] (got {' '.join(sys.argv[1:])})")
    if not SOURCE.exists():
        sys.exit(f"{SOURCE} not found: this benchmark needs ../shared/data beside the clone")
    frame = pd.read_csv(SOURCE, sep="\t", quoting=3, keep_default_na=False)
    frame["sentence_group"] = sentence_groups(frame.sentence.tolist())
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(TARGET, sep="\t", index=False, quoting=3)
    sizes = frame.sentence_group.value_counts()
    print(f"{TARGET}: {len(frame):,} rows in {len(sizes):,} sentence groups "
          f"(median {sizes.median():.0f} rows, largest {sizes.max()})")
    if hold_out:
        held = held_out(frame.sentence_group)
        for name, part in (("train_part.tsv", frame[~held]), ("heldout.tsv", frame[held])):
            part.to_csv(TARGET.parent / name, sep="\t", index=False, quoting=3)
            print(f"{TARGET.parent / name}: {len(part):,} rows")


if __name__ == "__main__":
    main()
