"""Plain baselines on the same question set: what RRA's retrieval must beat.

    .venv/bin/python bench/eval_baselines.py ../shared/sample-docs bench/eval/roborail.jsonl

Two pipelines without anything of RRA's but the question file's format:
- plain BM25 (k1 1.2, b 0.75) over 1000-character chunks of each PDF's raw page text
  (pypdfium2, no layout clean-up), words lower-cased, no stemming, no stop words;
- vector only: the same local MiniLM over 1000-character chunks with 100 of overlap,
  cosine similarity, exact.
A hit is as in documents.evaluation: a chunk of the right document whose pages overlap
the expected ones and that holds every fact. Prints hit@1 / hit@5 / MRR@10 per split and
kind. Prints numbers; it is not a test.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORD = re.compile(r"\w+", re.UNICODE)


def chunks_of(path: Path, size: int, overlap: int) -> list[dict]:
    """(text, first page, last page) windows of the PDF's concatenated page text."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    texts = [pdf[index].get_textpage().get_text_range() for index in range(len(pdf))]
    pdf.close()
    return windows(path.name, texts, size, overlap)


def windows(name: str, page_texts: list[str], size: int, overlap: int) -> list[dict]:
    """Windows of `size` characters, `overlap` shared with the previous one, over the pages'
    texts joined with a newline; each with its document, pages and offset in the join."""
    text, page_at = "", []
    for number, page_text in enumerate(page_texts, 1):
        text += page_text + "\n"
        page_at += [number] * (len(page_text) + 1)
    out, step = [], size - overlap
    for start in range(0, max(len(text) - overlap, 1), step):
        end = min(start + size, len(text))
        out.append(
            {
                "doc": name,
                "text": text[start:end],
                "first": page_at[start],
                "last": page_at[max(end - 1, start)],
                "start": start,
                "end": end,
            }
        )
    return out


def relevant(chunk: dict, case) -> bool:
    from documents.evaluation import holds_facts

    if not case.answerable or chunk["doc"] != case.doc:
        return False
    if case.pages and not any(chunk["first"] <= p <= chunk["last"] for p in case.pages):
        return False
    return holds_facts(chunk["text"], case.facts)


class BM25:
    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.docs = [Counter(WORD.findall(t.lower())) for t in texts]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / len(self.lengths)
        df = Counter(term for d in self.docs for term in d)
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        terms = set(WORD.findall(query.lower()))
        out = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            score = 0.0
            for t in terms:
                tf = doc.get(t, 0)
                if tf:
                    norm = tf + self.k1 * (1 - self.b + self.b * length / self.avg)
                    score += self.idf[t] * tf * (self.k1 + 1) / norm
            out.append(score)
        return out


def report(name: str, cases, ranked_for) -> None:
    from documents.evaluation import Score

    groups: dict[str, Score] = defaultdict(Score)
    for case in cases:
        if not case.answerable:
            continue
        top = ranked_for(case)[:10]
        rank = next((i for i, c in enumerate(top, 1) if relevant(c, case)), None)
        for key in ("all", case.split, f"{case.split}/{case.kind}"):
            groups[key].add(rank)
    print(f"\n{name}")
    for key, score in sorted(groups.items()):
        s = score.finished()
        print(
            f"  {key:<22} n={s.n:<4} hit@1 {s.hit_at_1:.3f}  hit@5 {s.hit_at_5:.3f}  MRR {s.mrr:.3f}"
        )


def main() -> None:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rra.settings")
    os.environ.setdefault("ENV_FILE", "")
    os.environ.setdefault("SECRET_KEY", "baseline-" + "x" * 40)
    os.environ.setdefault("EMBEDDED_REDIS", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()  # the question loader and the local model live in the project
    import numpy as np

    from documents.embeddings import LocalProvider
    from documents.evaluation import load_cases

    folder, questions = Path(sys.argv[1]), Path(sys.argv[2])
    cases = load_cases(questions)
    paths = sorted(p for p in folder.rglob("*.pdf") if p.is_file())

    plain = [c for p in paths for c in chunks_of(p, 1000, 0)]
    bm25 = BM25([c["text"] for c in plain])

    def by_bm25(case):
        scores = bm25.scores(case.question)
        return [plain[i] for i in sorted(range(len(plain)), key=lambda i: -scores[i])]

    print(f"{len(cases)} questions, {len(paths)} PDFs, {len(plain)} plain chunks")
    report("plain BM25, 1000-char chunks", cases, by_bm25)

    windows = [c for p in paths for c in chunks_of(p, 1000, 100)]
    provider = LocalProvider()
    matrix = np.array(provider.embed_documents([c["text"] for c in windows]))

    def by_vector(case):
        sims = matrix @ np.array(provider.embed_query(case.question))
        return [windows[i] for i in np.argsort(-sims)]

    report("vector only, 1000/100-char chunks, local MiniLM", cases, by_vector)


if __name__ == "__main__":
    main()
