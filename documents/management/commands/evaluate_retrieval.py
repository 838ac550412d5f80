import json
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from documents.evaluation import BadEvalFile, evaluate, load_cases


class Command(BaseCommand):
    help = (
        "Measure retrieval on a JSONL question set: one {question, doc, pages} per line. "
        "Prints hit@1, hit@5 and MRR@k per search mode, then the misses."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--k", type=int, default=10, help="results per question (MRR cut-off)")
        parser.add_argument("--json", type=Path, dest="json_out", help="also write the report here")
        parser.add_argument("--user", help="search as this user (default: every ready document)")
        parser.add_argument("--quiet", action="store_true", help="leave out the misses")

    def handle(
        self,
        *args,
        file: Path,
        k: int,
        json_out: Path | None,
        user: str | None,
        quiet: bool,
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
        modes = ["vector", "text", "hybrid"]
        if settings.COHERE_API_KEY:
            modes.append("hybrid+rerank")
        reports = evaluate(cases, k=k, modes=modes, user=who)
        self.stdout.write(f"{len(cases)} questions, k={k}")
        self.stdout.write(f"{'mode':<15}{'hit@1':>8}{'hit@5':>8}{'MRR@' + str(k):>9}")
        for r in reports:
            self.stdout.write(f"{r.mode:<15}{r.hit_at_1:>8.3f}{r.hit_at_5:>8.3f}{r.mrr:>9.3f}")
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
        if json_out:
            json_out.write_text(
                json.dumps(
                    {"questions": len(cases), "k": k, "modes": [asdict(r) for r in reports]},
                    indent=2,
                )
            )
            self.stdout.write(f"\nwrote {json_out}")
