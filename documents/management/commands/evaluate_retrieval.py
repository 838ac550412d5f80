import json
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from documents.evaluation import (
    SPLITS,
    BadEvalFile,
    evaluate,
    evaluate_answers,
    load_cases,
)


def _share(part: dict, whole: dict, split: str) -> str:
    n = whole.get(split, 0)
    return f"{part.get(split, 0)}/{n} ({part.get(split, 0) / n:.2f})" if n else "-"


class Command(BaseCommand):
    help = (
        "Measure retrieval and declining on a JSONL question set: one {question, doc, "
        "pages, facts, kind, split} per line (see documents.evaluation). Prints hit@1, "
        "hit@5 and MRR@k per search mode, split and kind, the answer guard's decline rate "
        "on unanswerable questions, then the misses."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--k", type=int, default=10, help="results per question (MRR cut-off)")
        parser.add_argument("--json", type=Path, dest="json_out", help="also write the report here")
        parser.add_argument("--user", help="search as this user (default: every ready document)")
        parser.add_argument("--quiet", action="store_true", help="leave out the misses")
        parser.add_argument(
            "--modes", default="", help="comma-separated search modes (default: all)"
        )

    def handle(
        self,
        *args,
        file: Path,
        k: int,
        json_out: Path | None,
        user: str | None,
        quiet: bool,
        modes: str,
        **options,
    ):
        if k < 1 or k > 100:
            raise CommandError("--k must be between 1 and 100")
        try:
            cases = load_cases(file)
        except BadEvalFile as exc:
            raise CommandError(str(exc)) from None
        who = None
        if user:
            try:
                who = get_user_model().objects.with_email(user).get()
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user with email {user}.") from None
        chosen = [m for m in modes.split(",") if m] or ["vector", "text", "hybrid"]
        if not modes and settings.COHERE_API_KEY:
            chosen.append("hybrid+rerank")
        reports = evaluate(cases, k=k, modes=chosen, user=who)
        answers = evaluate_answers(cases, user=who)
        self.stdout.write(f"{len(cases)} questions, k={k}")
        self.stdout.write(f"{'mode':<15}{'hit@1':>8}{'hit@5':>8}{'MRR@' + str(k):>9}")
        for r in reports:
            self.stdout.write(f"{r.mode:<15}{r.hit_at_1:>8.3f}{r.hit_at_5:>8.3f}{r.mrr:>9.3f}")
        self.stdout.write(
            f"\n{'mode':<15}{'split/kind':<24}{'n':>4}{'hit@1':>8}{'hit@5':>8}{'MRR':>8}"
        )
        for r in reports:
            for name, score in r.groups.items():
                self.stdout.write(
                    f"{r.mode:<15}{name:<24}{score.n:>4}{score.hit_at_1:>8.3f}"
                    f"{score.hit_at_5:>8.3f}{score.mrr:>8.3f}"
                )
        self.stdout.write("\nanswers (hybrid search, answer guard, offline answerer):")
        for split in SPLITS:
            if not answers.unanswerable.get(split) and not answers.answerable.get(split):
                continue
            self.stdout.write(
                f"  {split}: unanswerable declined "
                f"{_share(answers.declined, answers.unanswerable, split)}, "
                f"offline {_share(answers.offline_declined, answers.unanswerable, split)}; "
                f"answerable kept {_share(answers.kept, answers.answerable, split)} "
                f"(grounded kept {_share(answers.grounded_kept, answers.grounded, split)}, "
                f"answered offline {_share(answers.grounded_offline, answers.grounded, split)}), "
                f"offline answer with every fact "
                f"{_share(answers.offline_facts, answers.answerable, split)}"
            )
        if not quiet:
            for r in reports:
                if not r.misses:
                    continue
                self.stdout.write(f"\nmisses ({r.mode}):")
                for m in r.misses:
                    rank = f"rank {m['rank']}" if m["rank"] else "not found"
                    self.stdout.write(f"  line {m['line']}: {m['question']}")
                    self.stdout.write(
                        f"    expected {m['expected']}; {rank}; top: {'; '.join(m['got'])}"
                    )
            if answers.wrong:
                self.stdout.write("\nanswer guard mistakes:")
                for w in answers.wrong:
                    self.stdout.write(f"  line {w['line']} ({w['as']}): {w['question']}")
        if json_out:
            json_out.write_text(
                json.dumps(
                    {
                        "questions": len(cases),
                        "k": k,
                        "modes": [asdict(r) for r in reports],
                        "answers": asdict(answers),
                    },
                    indent=2,
                )
            )
            self.stdout.write(f"\nwrote {json_out}")
