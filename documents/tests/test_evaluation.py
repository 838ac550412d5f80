"""The evaluation command on the small set shipped in documents/tests/eval."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from documents.services import document_ingest
from documents.tests import files
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db

EVAL = Path(__file__).parent / "eval"
SPINDLE_PAGES = [
    [
        "# Before you start",
        "Check that the coolant tank is full, the chip tray is empty and the emergency stop is released before switching on the milling machine.",
    ],
    [
        "# Spindle service",
        "To replace the spindle bearing, remove the drawbar, pull the spindle cartridge forward and press the new angular contact bearing in with the mounting sleeve.",
        "Tighten the spindle nut to 120 Nm with the special wrench and secure it with the lock screw.",
    ],
    [
        "# Lubrication",
        "Grease the linear guide rails every 40 hours with lithium grease through the nipples on each carriage.",
    ],
]


@pytest.fixture
def eval_corpus(owner, media, tmp_path):
    for path in sorted(EVAL.glob("*.md")):
        document = make_document(owner, name=path.name, content=path.read_bytes())
        assert document_ingest(document_id=document.pk) == "ready"
    pdf = files.make_pdf(tmp_path / "spindle-manual.pdf", SPINDLE_PAGES)
    document = make_document(
        owner, name="spindle-manual.pdf", content=pdf.read_bytes(), mime_type="application/pdf"
    )
    assert document_ingest(document_id=document.pk) == "ready"


def test_it_reports_each_mode_and_hybrid_retrieves_well(eval_corpus, tmp_path):
    out = StringIO()
    report = tmp_path / "report.json"
    call_command(
        "evaluate_retrieval",
        str(EVAL / "eval.jsonl"),
        "--k",
        "10",
        "--json",
        str(report),
        stdout=out,
    )
    text = out.getvalue()
    assert "18 questions, k=10" in text
    data = json.loads(report.read_text())
    modes = {m["mode"]: m for m in data["modes"]}
    assert set(modes) == {"vector", "text", "hybrid"}
    for mode in modes.values():
        assert 0 <= mode["hit_at_1"] <= mode["hit_at_5"] <= 1
        assert mode["hit_at_1"] <= mode["mrr"] <= mode["hit_at_5"]
    # The shipped set is easy for hybrid search; a regression in any leg shows here.
    assert modes["hybrid"]["hit_at_5"] >= 0.9
    assert modes["hybrid"]["mrr"] >= 0.75
    assert modes["vector"]["hit_at_5"] >= 0.8
    # Misses name the question and what came back instead.
    for miss in modes["text"]["misses"]:
        assert miss["question"] and miss["expected"]


def test_it_rejects_a_malformed_file_with_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"question": "ok?", "doc": "a.md", "pages": []}\n{"question": "", "doc": "a.md"}\n'
    )
    with pytest.raises(CommandError, match=r"bad.jsonl:2: 'question' must be a non-empty string"):
        call_command("evaluate_retrieval", str(bad))
    bad.write_text("not json\n")
    with pytest.raises(CommandError, match=r"bad.jsonl:1: not JSON"):
        call_command("evaluate_retrieval", str(bad))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("evaluate_retrieval", str(tmp_path / "missing.jsonl"))


def test_it_reports_kinds_splits_facts_and_the_decline_rate(eval_corpus, tmp_path):
    questions = tmp_path / "q.jsonl"
    lines = [
        {
            "question": "Which hydraulic oil does the press need?",
            "doc": "press-manual.md",
            "facts": ["ISO VG 46"],
            "kind": "lookup",
        },
        {
            "question": "What does fault E17 mean?",
            "doc": "press-manual.md",
            "facts": ["pressure sensor signal lost"],
            "kind": "lookup",
            "split": "held-out",
        },
        # The right document, but no passage holds this "fact": never a hit.
        {
            "question": "Which hydraulic oil does the press need?",
            "doc": "press-manual.md",
            "facts": ["ISO VG 68"],
            "kind": "table",
        },
        {"question": "What is the capital of Peru?", "kind": "unanswerable"},
        {
            "question": "Which colour is the press's paint?",
            "kind": "unanswerable",
            "split": "held-out",
        },
    ]
    questions.write_text("\n".join(json.dumps(x) for x in lines))
    out = StringIO()
    report = tmp_path / "report.json"
    call_command(
        "evaluate_retrieval",
        str(questions),
        "--modes",
        "hybrid",
        "--json",
        str(report),
        stdout=out,
    )

    data = json.loads(report.read_text())
    [hybrid] = data["modes"]
    groups = hybrid["groups"]
    assert groups["tune/lookup"]["n"] == 1 and groups["tune/lookup"]["hit_at_1"] == 1.0
    assert groups["held-out/lookup"]["hit_at_5"] == 1.0
    assert groups["tune/table"]["hit_at_5"] == 0.0  # the fact is in no passage
    assert groups["tune"]["n"] == 2 and groups["tune"]["hit_at_5"] == 0.5
    answers = data["answers"]
    assert answers["unanswerable"] == {"tune": 1, "held-out": 1}
    assert answers["declined"] == {"tune": 1, "held-out": 1}
    assert answers["kept"] == {"tune": 2, "held-out": 1}
    assert answers["offline_facts"].get("held-out") == 1
    # The table question's document holds no passage with its fact: not grounded.
    assert answers["grounded"] == {"tune": 1, "held-out": 1}
    assert answers["grounded_kept"] == {"tune": 1, "held-out": 1}
    text = out.getvalue()
    assert "held-out/lookup" in text and "unanswerable declined 1/1" in text
    assert "grounded kept 1/1" in text


def test_it_rejects_an_unanswerable_question_with_a_document(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x?", "doc": "a.md", "kind": "unanswerable"}\n')
    with pytest.raises(CommandError, match=r"bad.jsonl:1: an unanswerable question has no 'doc'"):
        call_command("evaluate_retrieval", str(bad))
    bad.write_text('{"question": "x?", "doc": "a.md", "split": "test"}\n')
    with pytest.raises(
        CommandError,
        match=r"'split' must be one of tune, held-out, fresh, fresh2, fresh3, fresh4, fresh5, fresh6$",
    ):
        call_command("evaluate_retrieval", str(bad))


def test_a_section_places_the_hit_and_fresh_is_its_own_split(eval_corpus, tmp_path):
    questions = tmp_path / "q.jsonl"
    lines = [
        # Right document, section and fact: a hit, reported under "fresh".
        {
            "question": "How do I tension the conveyor belt?",
            "doc": "conveyor.md",
            "section": "belt  TENSION",
            "facts": ["take-up screws"],
            "kind": "procedure",
            "split": "fresh",
        },
        # The same fact named under another section of that document: never in place.
        {
            "question": "How do I tension the conveyor belt?",
            "doc": "conveyor.md",
            "section": "Gearbox",
            "facts": ["take-up screws"],
            "kind": "procedure",
            "split": "fresh",
        },
        # A follow-up carries the earlier turns; it is loaded and reported by kind.
        {
            "question": "And how often after that?",
            "history": [
                {"role": "user", "content": "When is the conveyor gearbox oil changed first?"},
                {"role": "assistant", "content": "After the first 500 hours."},
            ],
            "doc": "conveyor.md",
            "section": "Gearbox",
            "facts": ["5,000 hours"],
            "kind": "followup",
        },
    ]
    questions.write_text("\n".join(json.dumps(x) for x in lines))
    out = StringIO()
    report = tmp_path / "report.json"
    call_command(
        "evaluate_retrieval", str(questions), "--modes", "hybrid", "--json", str(report), stdout=out
    )
    [hybrid] = json.loads(report.read_text())["modes"]
    groups = hybrid["groups"]
    assert groups["fresh"]["n"] == 2
    assert groups["fresh"]["hit_at_5"] == 0.5  # only the question with the right section
    assert groups["all/procedure"]["n"] == 2
    assert groups["tune/followup"]["n"] == 1
    missed = [m for m in hybrid["misses"] if m["rank"] is None]
    assert [m["expected"] for m in missed] == ["conveyor.md Gearbox"]
    assert "fresh/procedure" in out.getvalue()


def test_fresh2_is_a_split_of_its_own_beside_fresh(eval_corpus, tmp_path):
    questions = tmp_path / "q.jsonl"
    lines = [
        {
            "question": "How do I tension the conveyor belt?",
            "doc": "conveyor.md",
            "section": "Belt tension",
            "facts": ["take-up screws"],
            "kind": "procedure",
            "split": "fresh",
        },
        {
            "question": "Which hydraulic oil does the press need?",
            "doc": "press-manual.md",
            "facts": ["ISO VG 68"],  # in no passage: a miss, counted under fresh2 only
            "kind": "lookup",
            "split": "fresh2",
        },
        {
            "question": "What colour is the press's paint?",
            "kind": "unanswerable",
            "split": "fresh2",
        },
    ]
    questions.write_text("\n".join(json.dumps(x) for x in lines))
    out = StringIO()
    report = tmp_path / "report.json"
    call_command(
        "evaluate_retrieval", str(questions), "--modes", "hybrid", "--json", str(report), stdout=out
    )
    data = json.loads(report.read_text())
    [hybrid] = data["modes"]
    groups = hybrid["groups"]
    assert groups["fresh"]["n"] == 1 and groups["fresh"]["hit_at_5"] == 1.0
    assert groups["fresh2"]["n"] == 1 and groups["fresh2"]["hit_at_5"] == 0.0
    assert groups["fresh2/lookup"]["n"] == 1
    assert data["answers"]["unanswerable"] == {"fresh2": 1}
    assert data["answers"]["answerable"] == {"fresh": 1, "fresh2": 1}
    assert "  fresh2: unanswerable declined" in out.getvalue()


def test_in_section_ignores_case_spacing_and_numbers():
    from documents.evaluation import in_section

    assert in_section("Finding Files › 2.6 Size", "size")
    assert in_section("Chapter 26. Backup and Restore › 26.1. SQL  Dump", "SQL Dump")
    assert not in_section("Chapter 26. Backup and Restore › 26.1. SQL Dump", "File System Level")
    assert not in_section("", "Size")


def test_it_rejects_a_malformed_history_or_section(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "And then?", "doc": "a.md", "history": [{"role": "bot"}]}\n')
    with pytest.raises(CommandError, match=r"bad.jsonl:1: 'history' must be a list"):
        call_command("evaluate_retrieval", str(bad))
    bad.write_text('{"question": "x?", "doc": "a.md", "section": "  "}\n')
    with pytest.raises(CommandError, match=r"bad.jsonl:1: 'section' must be a heading's title"):
        call_command("evaluate_retrieval", str(bad))


def test_a_follow_up_is_searched_with_its_history_and_bad_history_is_rejected(tmp_path):
    from documents.evaluation import BadEvalFile, load_cases, search_query

    path = tmp_path / "q.jsonl"
    turns = [
        {"role": "user", "content": "How do I calibrate the chuck?"},
        {"role": "assistant", "content": "Put a spirit level on it [1]."},
    ]
    path.write_text(
        json.dumps({"question": "Which tool do I need for that?", "doc": "m.md", "history": turns})
        + "\n"
    )
    (case,) = load_cases(path)
    assert [role for role, _ in case.history] == ["user", "assistant"]
    assert search_query(case) == (
        "Which tool do I need for that? How do I calibrate the chuck? Put a spirit level on it ."
    )
    path.write_text(json.dumps({"question": "q", "doc": "m.md", "history": [{"role": "x"}]}))
    with pytest.raises(BadEvalFile, match=r"q.jsonl:1: 'history' must be a list"):
        load_cases(path)
