"""Small demo datasets the project generates itself, so every recipe runs offline on a fresh clone.

    python -m common.tools.demo_data demo_data      # demo_data/{sentiment/*.csv, nli/*.jsonl, ner/*.jsonl, qa/*}

They are templated English, easy by design: they show a recipe learning end to end, not a benchmark
(the README's numbers come from real data).
"""
import csv
import json
import os
import random
import sys

POSITIVE = ["wonderful", "delightful", "moving", "brilliant", "charming", "gripping", "funny", "superb",
            "heartfelt", "beautiful", "clever", "fresh"]
NEGATIVE = ["boring", "dreadful", "clumsy", "tedious", "predictable", "shallow", "messy", "dull",
            "painful", "lifeless", "forgettable", "annoying"]
SUBJECTS = ["the film", "this movie", "the plot", "the acting", "the script", "the soundtrack", "the ending",
            "the cast", "the direction", "every scene"]
TEMPLATES = ["{s} is {a}.", "honestly, {s} was {a}.", "{s} felt {a} from start to finish.",
             "i thought {s} was {a} and {b}.", "what a {a} experience: {s} is {b}.", "{s}? {a}, simply {b}."]

PEOPLE = ["a man", "a woman", "a child", "an old man", "two girls", "a dog", "a musician", "a chef"]
ACTIONS = [("playing guitar", "sleeping"), ("running", "sitting still"), ("eating lunch", "cooking dinner"),
           ("reading a book", "swimming"), ("laughing", "crying"), ("riding a bike", "driving a truck")]
PLACES = ["in the park", "on the beach", "at home", "in a kitchen", "on a street", "in the snow"]

FIRST_NAMES = ["Anna", "Peter", "Maria", "John", "Yuki", "Ahmed", "Sofia", "Lars", "Chen", "Olga"]
LAST_NAMES = ["Schmidt", "Brown", "Garcia", "Tanaka", "Haddad", "Novak", "Rossi", "Kowalski"]
CITIES = ["Paris", "Berlin", "New York", "Cairo", "Buenos Aires", "Tokyo", "Oslo", "Cape Town", "Lima"]
NER_TEMPLATES = ["{p} lives in {c} .", "{p} flew from {c} to {d} yesterday .", "In {c} , {p} met {q} .",
                 "{p} said the weather in {c} was cold .", "{p} and {q} moved to {c} last year ."]


def ner_rows(n, rng):
    """Words with IOB2 tags for people (PER) and places (LOC); names are one or two words."""
    rows = []
    for _ in range(n):
        fills = {"p": _person(rng), "q": _person(rng), "c": rng.choice(CITIES), "d": rng.choice(CITIES)}
        tokens, tags = [], []
        for word in rng.choice(NER_TEMPLATES).split():
            if word.startswith("{"):
                kind, words = "PER" if word[1] in "pq" else "LOC", fills[word[1]].split()
                tokens += words
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
            else:
                tokens.append(word)
                tags.append("O")
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


def _person(rng):
    return rng.choice(FIRST_NAMES) + (f" {rng.choice(LAST_NAMES)}" if rng.random() < 0.6 else "")


def sentiment_rows(n, rng):
    rows = []
    for _ in range(n):
        label = rng.choice(["positive", "negative"])
        words = POSITIVE if label == "positive" else NEGATIVE
        a, b = rng.sample(words, 2)
        text = rng.choice(TEMPLATES).format(s=rng.choice(SUBJECTS), a=a, b=b)
        rows.append({"text": text[0].upper() + text[1:], "label": label})
    return rows


def nli_rows(n, rng):
    rows = []
    for _ in range(n):
        person, (action, other), place = rng.choice(PEOPLE), rng.choice(ACTIONS), rng.choice(PLACES)
        premise = f"{person.capitalize()} is {action} {place}."
        label = rng.choice(["entailment", "neutral", "contradiction"])
        hypothesis = {
            "entailment": rng.choice([f"{person.capitalize()} is {action}.", f"Someone is {place}."]),
            "neutral": rng.choice([f"{person.capitalize()} is {action} with friends.",
                                   f"{person.capitalize()} is happy {place}."]),
            "contradiction": rng.choice([f"{person.capitalize()} is {other} {place}.",
                                         f"Nobody is {place}."]),
        }[label]
        rows.append({"premise": premise, "hypothesis": hypothesis, "label": label})
    return rows


NAMES = ["Alice", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jonas", "Kemal", "Lena",
         "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq"]
CITIES = ["Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Hanoi", "Lima", "Dakar", "Oslo", "Perth", "Tunis",
          "Bergen", "Cusco", "Graz", "Turin", "Kyoto"]
JOBS = ["baker", "pilot", "nurse", "carpenter", "teacher", "chemist", "gardener", "architect", "violinist", "judge"]
FILLER = ["The weather that year was mild.", "Many visitors came to the old market.", "The river flooded twice.",
          "A new bridge opened in the spring.", "Local newspapers covered the harvest festival."]


def qa_rows(n, rng, prefix, filler_sentences=(0, 2)):
    """Short biographies; each question asks for one fact (where born, which year, what job). Every
    fact sits at a known character offset, so answer_start is exact."""
    rows = []
    for i in range(n):
        name, city, job, year = rng.choice(NAMES), rng.choice(CITIES), rng.choice(JOBS), str(rng.randint(1900, 2010))
        facts = {"city": f"{name} was born in {city}.", "year": f"{name} moved abroad in {year}.",
                 "job": f"{name} worked as a {job} for many years."}
        sentences = list(facts.values()) + rng.sample(FILLER, rng.randint(*filler_sentences))
        rng.shuffle(sentences)
        context = " ".join(sentences)
        kind = rng.choice(list(facts))
        question, answer = {"city": (f"Where was {name} born?", city), "year": (f"When did {name} move abroad?", year),
                            "job": (f"What did {name} work as?", job)}[kind]
        start = context.index(facts[kind]) + facts[kind].index(answer)
        rows.append({"id": f"{prefix}{i}", "question": question, "context": context,
                     "answers": {"text": [answer], "answer_start": [start]}})
    return rows


def squad_json(rows, title="demo"):
    """Flat rows in the official SQuAD v1.1 shape: data[].paragraphs[].qas[]."""
    return {"version": "1.1", "data": [{"title": title, "paragraphs": [
        {"context": r["context"], "qas": [{"id": r["id"], "question": r["question"], "answers": [
            {"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]}]}
        for r in rows]}]}


def write(out_dir, seed=0):
    rng = random.Random(seed)
    os.makedirs(os.path.join(out_dir, "sentiment"), exist_ok=True)
    for split, n in (("train", 600), ("validation", 150), ("test", 150)):
        with open(os.path.join(out_dir, "sentiment", f"{split}.csv"), "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(sentiment_rows(n, rng))
    os.makedirs(os.path.join(out_dir, "nli"), exist_ok=True)
    for split, n in (("train", 900), ("dev_matched", 150), ("dev_mismatched", 150), ("test", 150)):
        with open(os.path.join(out_dir, "nli", f"{split}.jsonl"), "w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in nli_rows(n, rng))
    os.makedirs(os.path.join(out_dir, "ner"), exist_ok=True)
    for split, n in (("train", 400), ("validation", 100), ("test", 100)):
        with open(os.path.join(out_dir, "ner", f"{split}.jsonl"), "w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in ner_rows(n, rng))
    os.makedirs(os.path.join(out_dir, "qa"), exist_ok=True)  # SQuAD JSON for train/dev, JSON lines for test
    for split, n in (("train", 400), ("dev", 100)):
        with open(os.path.join(out_dir, "qa", f"{split}.json"), "w") as fh:
            json.dump(squad_json(qa_rows(n, rng, f"{split}-")), fh)
    with open(os.path.join(out_dir, "qa", "test.jsonl"), "w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in qa_rows(100, rng, "test-"))
    return out_dir


if __name__ == "__main__":
    print(f"demo data written to {write(sys.argv[1] if len(sys.argv) > 1 else 'demo_data')}")
