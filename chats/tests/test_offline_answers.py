"""Offline answers (no model configured) that read like help, over a realistic manual:
a procedure as numbered, cited steps from one section; every part of a multi-part
question; follow-ups that use the conversation (offline and with a model); links and
images of a shared document quoted as inert text."""

import re

import pytest

from chats.answering.extractive import NOT_COVERED, extractive_answer, question_parts
from chats.answering.llm import reset_llm
from chats.answering.retrieval import is_follow_up, search_query
from chats.answering.types import Passage, Turn
from chats.models import Chat, Message
from chats.rendering import render_answer
from chats.tests.conftest import events
from documents.models import Document
from documents.services import document_ingest
from documents.tests.conftest import make_document
from rra.testing.fakes import FakeOpenAI

# A service manual as a vendor writes it: a procedure under a numbered heading, long
# enough to span several chunks, with conditions between its steps; a second procedure
# in another section, so "one section" is tested; specifications in their own sections.
MANUAL = b"""# RoboRail service manual

## 3. Calibration procedures

### 3.1 Calibration of chuck rotation

Calibration of the chuck rotation makes sure that the home position of both chucks is
level. This calibration procedure applies to the front and rear chuck.

Necessary tool: Spirit level

To make sure that the home position of the chucks is level, do the procedure that follows:

1. Make sure that a jaw set is installed on the chucks.
2. Select Home chucks to put the chucks at their home position.
3. Make sure that jaw no. 4 is on top.
4. Put a spirit level in the middle of the chucks.
5. In the Calibration menu, select Chuck rotation calibration.
6. Push the Emergency button on the remote control to stop the motors.
7. Manually turn the chuck until it is level.
8. Push the Emergency button again to release it.
9. Select Done to save the home position.

### 3.2 Calibration of the trolley

Necessary tool: Measuring tape

1. Select Home trolley to move the trolley to the rear of the machine.
2. Measure the distance between the rear of the trolley and the hook.
3. Enter the measured distance and select Submit values.

## 4. Specifications

### 4.1 Rail bolts

Tighten the rail bolts to a torque of 85 Nm with a calibrated torque wrench.

### 4.2 Drive belt

Replace the drive belt every 2,000 operating hours, or earlier when it shows cracks.
"""

pytestmark = pytest.mark.django_db


@pytest.fixture
def manual(owner, media, settings):
    settings.CHUNK_TARGET_TOKENS = 60  # the chuck procedure spans several chunks
    document = make_document(owner, name="RoboRail_service_manual.md", content=MANUAL)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


def _ask(client, chat, question) -> tuple[str, list]:
    stream = events(
        client.post(
            f"/api/chats/{chat.pk}/messages",
            {"question": question},
            content_type="application/json",
        )
    )
    message = Message.objects.get(pk=stream[-1][1]["message_id"])
    return message.content, stream


def test_how_do_i_gets_the_procedures_steps_in_order_numbered_and_cited(
    owner_client, owner, manual
):
    assert manual.chunks.filter(section__endswith="3.1 Calibration of chuck rotation").count() > 1
    chat = Chat.objects.create(owner=owner)
    answer, stream = _ask(owner_client, chat, "How do I calibrate the chuck rotation?")

    steps = re.findall(r"^(\d+)\. (.+) \[(\d+)\]$", answer, re.MULTILINE)
    assert [int(n) for n, _, _ in steps] == list(range(1, 10))  # numbered 1..9, in order
    texts = [text for _, text, _ in steps]
    assert texts[0] == "Make sure that a jaw set is installed on the chucks."
    assert texts[6] == "Manually turn the chuck until it is level."
    assert texts[-1] == "Select Done to save the home position."
    # One section: the trolley's steps are not mixed in.
    assert "trolley" not in answer.lower()
    # Each step cites a passage of the chuck section that holds it.
    passages = {p["number"]: p for p in stream[0][1]["passages"]}
    for *_, number in steps:
        assert passages[int(number)]["section"].endswith("3.1 Calibration of chuck rotation")
    # The heading names the procedure but is never the answer itself.
    assert "3.1 Calibration of chuck rotation" in answer.splitlines()[0]
    assert "Necessary tool: Spirit level" in answer, answer


def test_a_multi_part_question_gets_every_part(owner_client, owner, manual):
    chat = Chat.objects.create(owner=owner)
    answer, _ = _ask(
        owner_client,
        chat,
        "What torque do the rail bolts need, and how often should the drive belt be replaced?",
    )

    assert "85 Nm" in answer and "2,000 operating hours" in answer
    assert re.search(r"85 Nm.*\[\d\]", answer) and re.search(r"2,000 operating.*\[\d\]", answer)


def test_a_follow_up_uses_the_conversation_offline(owner_client, owner, manual):
    chat = Chat.objects.create(owner=owner)
    _ask(owner_client, chat, "How do I calibrate the chuck rotation?")
    answer, _ = _ask(owner_client, chat, "Which tool do I need for that?")

    assert "Spirit level" in answer
    assert "Measuring tape" not in answer  # the trolley's tool is another conversation


def test_a_follow_up_uses_the_conversation_with_a_model(owner_client, owner, manual, settings):
    server = FakeOpenAI(api_key="k").start()
    server.reply = "A spirit level [1]."
    settings.LLM_BASE_URL = server.base_url
    settings.LLM_API_KEY = "k"
    settings.LLM_MODEL = "fake-model"
    reset_llm()
    try:
        chat = Chat.objects.create(owner=owner)
        _ask(owner_client, chat, "How do I calibrate the trolley?")
        _, stream = _ask(owner_client, chat, "Which tool do I need for that?")
        prompt = server.chat_requests[-1]["messages"][0]["content"]
    finally:
        server.stop()
        reset_llm()
    # The passages given to the model are the trolley's, found through the earlier turn.
    sections = [p["section"] for p in stream[0][1]["passages"]]
    assert sections and sections[0].endswith("3.2 Calibration of the trolley")
    assert "Measuring tape" in prompt


def test_links_and_images_of_a_shared_document_stay_inert_in_an_offline_answer(
    owner_client, owner, outsider, media
):
    hostile = make_document(
        outsider,
        name="firmware.md",
        content=(
            b"# Controller firmware\n\n"
            b"Update the controller firmware with the [official firmware]"
            b"(https://evil.example/fw.exe) installer before calibration. "
            b"![logo](https://tracker.example/p.png)\n"
        ),
        visibility=Document.Visibility.SHARED,
    )
    assert document_ingest(document_id=hostile.pk) == "ready"
    chat = Chat.objects.create(owner=owner)
    answer, stream = _ask(owner_client, chat, "How do I update the controller firmware?")

    assert "official firmware" in answer and "](" not in answer
    html = next(d["html"] for name, d in stream if name == "done")
    assert "<a" not in html and "<img" not in html and "href" not in html
    assert "official firmware (https://evil.example/fw.exe)" in html  # shown, not live
    page = owner_client.get(f"/c/{chat.pk}/").content.decode()
    assert "evil.example" in page and 'href="https://evil.example' not in page
    assert "tracker.example/p.png" not in page or '<img src="https://tracker' not in page


# --- The parts, without the database ---------------------------------------------------


def test_what_is_a_follow_up_and_what_retrieval_searches_for_it():
    history = [
        Turn("user", "How do I calibrate the chuck rotation?"),
        Turn("assistant", "Here are the steps [1]: put a spirit level on the chuck [1]."),
    ]
    assert is_follow_up("Which tool do I need for that?")
    assert is_follow_up("And if the chuck is still not level?")
    assert is_follow_up("Welk gereedschap heb ik daarvoor nodig?")
    assert not is_follow_up("How do I calibrate the trolley?")  # names its subject
    assert search_query("Which tool do I need for that?", history) == (
        "Which tool do I need for that? How do I calibrate the chuck rotation? "
        "Here are the steps : put a spirit level on the chuck ."
    )
    assert search_query("How do I calibrate the trolley?", history) == (
        "How do I calibrate the trolley?"
    )
    assert search_query("Which tool do I need for that?", []) == "Which tool do I need for that?"


def test_a_question_is_split_into_its_parts():
    assert question_parts("What torque do the bolts need, and how often is the belt replaced?") == [
        "What torque do the bolts need",
        "how often is the belt replaced",
    ]
    assert question_parts("Which files and photos should I include?") == [
        "Which files and photos should I include"
    ]


def test_steps_are_numbered_across_conditions_and_never_start_with_a_heading():
    text = (
        "3. Calibration procedures\n"
        "To go to the calibration menu:\n"
        "▪ Put the RoboRail in Maintenance mode.\n"
        "▪ Select the Calibration button on the remote control.\n"
        "If the menu does not open:\n"
        "▪ Restart the remote control.\n"
        "Send to HGG\n"
        "▪ Enter your e-mail address.\n"
        "▪ Enter the machine number.\n"
    )
    passage = Passage(1, text, "m.pdf", "p. 6", "3. Calibration procedures")
    answer = extractive_answer("How do I get to the calibration menu?", [passage])

    assert answer.splitlines()[0] == (
        "Here are the steps from the documents (3. Calibration procedures):"
    )
    assert "1. Put the RoboRail in Maintenance mode. [1]" in answer
    assert "2. Select the Calibration button on the remote control. [1]" in answer
    assert "If the menu does not open: [1]" in answer
    assert "3. Restart the remote control. [1]" in answer
    # A title line ends the procedure: the next one's steps are not this one's.
    assert "e-mail" not in answer and "1. Calibration procedures" not in answer


def test_a_lookup_answer_never_quotes_a_bare_heading():
    passage = Passage(
        1,
        "3.1 Calibration of chuck rotation\nCalibrate the chuck rotation with a spirit level.",
        "m.pdf",
        "p. 6",
        "3. Calibration procedures",
    )
    answer = extractive_answer("What is the calibration of chuck rotation done with?", [passage])

    assert "- Calibrate the chuck rotation with a spirit level. [1]" in answer
    assert "3.1 Calibration of chuck rotation [1]" not in answer


def test_a_line_introducing_commands_is_a_step_and_a_list_of_options_is_not():
    text = (
        "You can create a training user account, e.g. fish, by the following.\n"
        "$ sudo adduser fish\n"
        "Desktop environments choose the default editor in their settings:\n"
        "- GNOME desktop: Settings, Default Applications\n"
        "- KDE desktop: Control Center, Component Chooser\n"
    )
    passage = Passage(1, text, "ref.md", "", "Users › Training account")
    answer = extractive_answer("How do I create a training user account?", [passage])

    assert answer.splitlines()[0] == "Here are the steps from the documents (Training account):"
    assert (
        "1. You can create a training user account, e.g. fish, by the following: "
        "`$ sudo adduser fish` [1]"
    ) in answer
    # The desktops' list after it is about something else: not a step of this procedure.
    assert "GNOME" not in answer and "2." not in answer

    # Asked something else, the same lines are quoted as sentences, the command with the
    # line that introduces it.
    answer = extractive_answer("What is fish in the training user account?", [passage])
    assert answer.startswith("Here is what the documents say:")
    assert "- `$ sudo adduser fish` [1]" in answer


# Debian Reference 1.1.11 as its chunk reads: a procedure written as prose, each step a
# sentence "... by the following." and the command after it, with a remark between.
PROSE_PROCEDURE = (
    "If you do not want to use your main user account for the following training "
    "activities, you can create a training user account, e.g. `fish` by the following.\n"
    "# adduser fish\n"
    "Answer all questions.\n"
    "This creates a new account named as `fish`. After your practice, you can remove this "
    "user account and its home directory by the following.\n"
    "# deluser --remove-home fish\n"
    "...\n"
)


def test_a_procedure_written_as_prose_and_commands_gets_numbered_steps_with_the_commands():
    passage = Passage(1, PROSE_PROCEDURE, "ref.md", "", "Tutorials › 1.1.11. An extra user account")
    answer = extractive_answer(
        "How do I create a practice user account and remove it with its home directory?",
        [passage],
    )

    steps = re.findall(r"^(\d+)\. (.+) \[(\d+)\]$", answer, re.MULTILINE)
    assert [n for n, _, _ in steps] == ["1", "2"]
    assert steps[0][1].endswith("e.g. `fish` by the following: `# adduser fish`")
    assert steps[1][1].startswith("This creates a new account")
    assert steps[1][1].endswith("by the following: `# deluser --remove-home fish`")
    assert "Answer all questions. [1]" in answer  # the remark between, in its place
    assert answer.index("adduser") < answer.index("Answer all") < answer.index("deluser")
    assert "..." not in answer  # a command's elided output is no part of it


def test_a_quoted_sentence_brings_the_command_after_it_and_never_the_heading_path():
    text = (
        "Chapter 6. Network › 6.3. The remote access server and utilities (SSH) › 6.3.3. "
        "Shutdown\n"
        "You can shutdown the system under the single-user mode from the commandline.\n"
        "# poweroff -i -f\n"
        "LOG: the system is going down\n"
        "The general command form to restore a text dump is\n"
        "psql dbname < dumpfile\n"
    )
    section = "Chapter 6. Network › 6.3. The remote access server and utilities (SSH) › 6.3.3."
    passage = Passage(1, text, "ref.md", "", section)
    answer = extractive_answer("How do I shutdown the system in single-user mode?", [passage])

    assert "- You can shutdown the system under the single-user mode from the commandline. [1]" in (
        answer
    )
    assert "- `# poweroff -i -f` [1]" in answer  # its command, though it shares no word
    assert "LOG:" not in answer and "›" not in answer

    answer = extractive_answer("What is the command form to restore a text dump?", [passage])
    assert "- `psql dbname < dumpfile` [1]" in answer


def test_how_do_i_over_a_markdown_manual_gets_its_prose_steps_with_their_commands(
    owner_client, owner, media
):
    document = make_document(
        owner,
        name="tutorial.md",
        content=(
            b"# GNU/Linux tutorials\n\n## An extra user account\n\n"
            + PROSE_PROCEDURE.replace("\n# ", "\n\n    # ").encode()
            + b"\n## Networking\n\nThe network is configured in /etc/network/interfaces.\n"
        ),
    )
    assert document_ingest(document_id=document.pk) == "ready"
    chat = Chat.objects.create(owner=owner)
    answer, stream = _ask(
        owner_client, chat, "How do I create a training user account and remove it again?"
    )

    steps = re.findall(r"^(\d+)\. (.+) \[(\d+)\]$", answer, re.MULTILINE)
    assert [n for n, _, _ in steps] == ["1", "2"], answer
    assert steps[0][1].endswith("by the following: `# adduser fish`")
    assert steps[1][1].endswith("by the following: `# deluser --remove-home fish`")
    cited = {p["number"]: p for p in stream[0][1]["passages"]}
    assert all(cited[int(n)]["section"].endswith("An extra user account") for *_, n in steps)
    html = next(d["html"] for name, d in stream if name == "done")
    assert "<ol>" in html and "<code># adduser fish</code>" in html


def test_a_question_in_another_language_gets_the_best_passage_not_a_decline():
    """The guard keeps passages for a Dutch question by the model's cross-lingual
    similarity; they share no words with it, so offline the best passage is quoted as it
    is (its procedure as steps), said to be in the manual's language."""
    lookup = Passage(
        1,
        "The PMAC controller answers on 192.168.7.10. Check the yellow Ethernet cable.",
        "net.md",
        "",
        "Network",
        score=0.9,
    )
    other = Passage(2, "Oil the rails weekly.", "oil.md", "", "Oil", score=0.5)
    answer = extractive_answer("Welk IP-adres heeft de PMAC-controller?", [other, lookup])
    assert answer != NOT_COVERED
    assert answer.splitlines()[0] == (
        "The passage closest to your question, in the manual's language:"
    )
    assert (
        "- The PMAC controller answers on 192.168.7.10. Check the yellow Ethernet cable. [1]"
        in (answer)
    )  # one paragraph, one bullet
    assert "Oil" not in answer

    steps = Passage(1, PROSE_PROCEDURE, "ref.md", "", "Tutorials › 1.1.11. An extra user account")
    answer = extractive_answer("Hoe maak ik een oefengebruiker aan?", [steps])
    assert "1. " in answer and "`# adduser fish`" in answer and "[1]" in answer
    # Steps too are said to be the closest passage's: an unanswerable question in another
    # language gets them as well (seen under make run: a Dutch question about a chuck the
    # library did not cover got a conveyor's steps as "the steps from the documents").
    # One lead-in, not the closest passage's and then "Here are the steps ..." too.
    assert answer.splitlines()[0] == (
        "The steps closest to your question, in the manual's language "
        "(1.1.11. An extra user account):"
    ), answer
    assert "Here are the steps" not in answer and "passage closest" not in answer
    # In the library's language the words still decide: an unrelated question declines.
    assert extractive_answer("How do I bake an apple pie?", [lookup]) == NOT_COVERED


@pytest.mark.django_db  # a decline asks the question's language of PostgreSQL
def test_a_follow_up_is_answered_when_its_own_words_are_covered_not_the_earlier_question_s():
    """The question before it (jobs dying on a remote box) is context: the passage about
    detaching screen answers what the follow-up asks, in none of that one's words."""
    text = (
        "9.1.2. The screen program\n"
        "You may detach the screen session by any methods.\n"
        "key binding | meaning\n"
        "^A ? | show a help screen (display key bindings)\n"
        "^A d | detach screen session from the terminal\n"
        "^A DD | detach screen session and log out\n"
    )
    passage = Passage(1, text, "ref.md", "", "System tips › 9.1.2. The screen program")
    history = [
        Turn(
            "user",
            "My jobs on a remote box die whenever my Wi-Fi flakes out. How do I keep them alive?",
        ),
        Turn("assistant", "Run them inside screen and reattach later."),
    ]
    answer = extractive_answer("What key do I press to detach from it?", [passage], history=history)
    assert answer != NOT_COVERED
    assert "| ^A d | detach screen session from the terminal [1] |" in answer

    # Without the conversation's words covered, a question standing on its own still
    # needs its words covered.
    unrelated = "Which key do I press to rotate the chuck by hand in the calibration menu?"
    assert extractive_answer(unrelated, [passage]) == NOT_COVERED


def test_a_numbered_list_of_labelled_paragraphs_is_no_procedure():
    """R-data's "Variations on read.table" numbers the issues to consider ("1. Encoding",
    "2. Header line", ...), each a label and a paragraph: seen under make run, "How do I
    read a spreadsheet file into R?" got them as numbered "steps". They are quoted as
    sentences; a list of real steps in the same shape stays a procedure."""
    text = (
        "2 Spreadsheet-like data › 2.1 Variations on read.table\n"
        "The function read.table is the most convenient way to read in a rectangular grid "
        "of data from a spreadsheet file. Some of the issues to consider are:\n"
        "1. Encoding If the file contains non-ASCII character fields, ensure that it is "
        "read in the correct encoding. This is mainly an issue for reading Latin-1 files in "
        "a UTF-8 locale, which can be done by something like read.table with fileEncoding.\n"
        "2. Header line We recommend that you specify the header argument explicitly. "
        "Conventionally the header line has entries only for the columns and not for the "
        "row labels, so is one field shorter than the remaining lines of the file.\n"
        "3. Separator Normally looking at the file will determine the field separator to be "
        "used, but with white-space separated files there may be a choice between the "
        "default and a tab. Note that the choice of separator affects quoted strings.\n"
    )
    section = "2 Spreadsheet-like data › 2.1 Variations on read.table"
    passage = Passage(1, text, "R-data.pdf", "p. 9", section)
    answer = extractive_answer("How do I read a spreadsheet file into R?", [passage])
    assert answer != NOT_COVERED
    assert not answer.startswith("Here are the steps"), answer
    assert not re.search(r"^\d\. ", answer, re.MULTILINE), answer
    assert "read.table is the most convenient way to read in a rectangular grid" in answer
    # The items are quoted as text: "1. Encoding" inside a bullet would be a numbered list.
    assert "<ol" not in render_answer(answer) and "1\\. Encoding If the file" in answer, answer

    steps = (
        "Calibration\n"
        "1. Select Home chucks to put the chucks at their home position.\n"
        "2. Put a spirit level in the middle of the chucks.\n"
        "3. Select Done to save the home position.\n"
    )
    answer = extractive_answer(
        "How do I calibrate the chucks?", [Passage(1, steps, "cal.pdf", "p. 6", "Calibration")]
    )
    assert answer.startswith("Here are the steps") and "2. Put a spirit level" in answer, answer


def test_each_part_of_a_question_gets_a_sentence_of_its_own():
    """The crontab line holds "var" too, so it was the best sentence of both parts and the
    first part ("which directories under /var can I leave out") got none: a sentence
    that two parts share stays with the part it matches more; the other takes its next."""
    text = (
        "10.2.1. Backup and recovery policy\n"
        "There are 3 key factors which determine actual backup and recovery policy.\n"
        "1. Knowing what to backup and recover.\n"
        '- Data files directly created by you: data in "~/"\n'
        '- Data files created by applications used by you: data in "/var/" (except '
        '"/var/cache/", "/var/run/", and "/var/tmp/")\n'
        '- System configuration files: data in "/etc/"\n'
        '- Cron job as a user process: files in "/var/spool/cron/crontabs" directory and '
        "restart cron(8).\n"
        '- Systemd timer jobs as user processes: files in "~/.config/systemd/user" '
        "directory.\n"
        '- Autostart jobs as user processes: files in "~/.config/autostart" directory.\n'
    )
    passage = Passage(1, text, "ref.md", "", "10.2. Backup and recovery › 10.2.1. Policy")
    answer = extractive_answer(
        "Which directories under /var can I leave out of my backups, and where do user "
        "crontabs live that I should keep?",
        [passage],
    )
    assert "/var/spool/cron/crontabs" in answer, answer
    assert "/var/cache/" in answer, answer
