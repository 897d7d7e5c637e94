"""XQuAD-R with each paragraph in one language only: a mixed-language corpus where every answer exists once.

    .venv/bin/python scripts/xquad_one_language.py ../shared/eval/xquad_r eval-results/xquad_r-one-language
    .venv/bin/moocsearch eval eval-results/xquad_r-one-language --queries zh

The pooled XQuAD-R corpus holds every paragraph in all three languages, so a ranking that favours the query's
language still finds one copy of the answer at once. A real collection rarely has that: a report exists in
the language its authors wrote it in. This writes a BEIR folder whose corpus has paragraph i in
`languages[i % len(languages)]` only (a third each in English, Chinese and Spanish by default), with the
queries of every language and qrels naming the one copy. A Chinese question then has its answer in Chinese for
a third of the paragraphs and in another language for the rest, which measures how fairly the ranking treats
languages. nDCG@10 is against one relevant passage per question.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def write_one_language(source: Path, output: Path, languages: list[str]) -> dict[str, int]:
    """Write the BEIR folder; returns how many paragraphs each language got."""
    paragraphs: dict[str, dict[str, dict[str, str]]] = {}
    for language in languages:
        with (source / f"corpus.{language}.jsonl").open(encoding="utf-8") as handle:
            paragraphs[language] = {row["_id"]: row for row in map(json.loads, handle)}
    ids = sorted(paragraphs[languages[0]])
    if any(sorted(rows) != ids for rows in paragraphs.values()):
        raise SystemExit(f"{source}: the corpus files do not hold the same paragraph ids")
    (output / "qrels").mkdir(parents=True, exist_ok=True)
    owner = {doc_id: languages[i % len(languages)] for i, doc_id in enumerate(ids)}
    with (output / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id in ids:
            row = dict(paragraphs[owner[doc_id]][doc_id], _id=f"{owner[doc_id]}-{doc_id}")
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    for path in sorted(source.glob("queries.*.jsonl")):
        (output / path.name).write_bytes(path.read_bytes())
    lines = (source / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    with (output / "qrels" / "test.tsv").open("w", encoding="utf-8") as handle:
        handle.write(lines[0] + "\n")
        for line in lines[1:]:
            query_id, doc_id, score = line.split("\t")
            if doc_id in owner:
                handle.write(f"{query_id}\t{owner[doc_id]}-{doc_id}\t{score}\n")
    return {language: sum(1 for o in owner.values() if o == language) for language in languages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the XQuAD-R BEIR folder (corpus.<lang>.jsonl files)")
    parser.add_argument("output", type=Path, help="the folder to write")
    parser.add_argument("--languages", default="en,zh,es", help="corpus languages, in turn (default en,zh,es)")
    args = parser.parse_args(argv)
    languages = [language.strip() for language in args.languages.split(",") if language.strip()]
    missing = [lang for lang in languages if not (args.source / f"corpus.{lang}.jsonl").is_file()]
    if missing:
        print(f"error: {args.source} has no corpus.{missing[0]}.jsonl", file=sys.stderr)
        return 2
    counts = write_one_language(args.source, args.output, languages)
    print(f"wrote {args.output}: " + ", ".join(f"{n} paragraphs in {lang}" for lang, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
