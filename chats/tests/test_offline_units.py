"""Offline answers quote whole units around the sentences they match: a table with its
header as a Markdown table, the code or commands a line introduces (short lines too),
the rest of a matched sentence's paragraph; a question in another language gets the
search's best passage (chats/answering/units.py, foreign.py)."""

import pytest

from chats.answering.extractive import extractive_answer
from chats.answering.types import Passage
from chats.rendering import render_answer

KERNEL = (
    "Chapter 3. The system initialization › 3.3. The kernel message\n"
    "3.3. The kernel message\n"
    "The kernel error message displayed to the console can be configured by setting its "
    "threshold level.\n"
    "# dmesg -n3\n"
    "**Table 3.4. List of kernel error levels**\n"
    "error level value | error level name | meaning\n"
    "0 | KERN_EMERG | system is unusable\n"
    "3 | KERN_ERR | error conditions\n"
    "4 | KERN_WARNING | warning conditions\n"
    "7 | KERN_DEBUG | debug-level messages\n"
)
SECTION = "Chapter 3. The system initialization › 3.3. The kernel message"


def test_a_matched_table_line_brings_its_table_with_its_header_each_row_cited():
    passage = Passage(1, KERNEL, "ref.md", "", SECTION)
    answer = extractive_answer("Which kernel error levels are there?", [passage])

    assert "| error level value | error level name | meaning |\n|---|---|---|" in answer
    assert "| 4 | KERN_WARNING | warning conditions [1] |" in answer
    assert "| 7 | KERN_DEBUG | debug-level messages [1] |" in answer
    html = render_answer(answer)
    assert html.count("<table>") == 1 and html.count("<tr>") == 5  # the header, four rows


def test_a_sentence_brings_a_command_too_short_to_be_a_sentence_as_code():
    passage = Passage(1, KERNEL, "ref.md", "", SECTION)
    answer = extractive_answer(
        "How do I set the threshold level of kernel messages on the console?", [passage]
    )
    assert "threshold level. [1]" in answer
    assert "- `# dmesg -n3` [1]" in answer


def test_a_line_ending_as_the_following_brings_its_whole_code_block():
    text = (
        "Automatic upgrade\n"
        "You should consider using this automatic upgrade with configuration parameters "
        "as the following.\n"
        'APT::Periodic::Update-Package-Lists "1";\n'
        '    APT::Periodic::Download-Upgradeable-Packages "1";\n'
        '    APT::Periodic::Unattended-Upgrade "1";\n'
        "If you are running an unstable system, you do not want to use it.\n"
    )
    passage = Passage(1, text, "ref.md", "", "Automatic upgrade")
    answer = extractive_answer("Which parameters configure the automatic upgrade?", [passage])

    assert '- `APT::Periodic::Unattended-Upgrade "1";` [1]' in answer
    assert answer.index("Update-Package-Lists") < answer.index("Unattended-Upgrade")
    assert "unstable" not in answer  # the prose after the block is not part of it


def test_a_matched_sentence_brings_the_rest_of_its_paragraph_in_one_bullet():
    text = (
        "Why are these numbers not equal?\n"
        "The only numbers that can be represented exactly are integers and binary "
        "fractions. All other numbers are internally rounded to 53 binary digits accuracy. "
        "As a result, two floating point numbers will not reliably be equal.\n"
        "Oil the rails weekly.\n"
    )
    passage = Passage(1, text, "faq.pdf", "p. 40", "Numbers")
    answer = extractive_answer("Why are two floating point numbers not equal?", [passage])

    bullets = [line for line in answer.splitlines() if line.startswith("- ")]
    assert len(bullets) == 1, answer
    assert "53 binary digits accuracy." in bullets[0] and bullets[0].endswith("equal. [1]")
    assert "Oil" not in answer


@pytest.mark.django_db  # the question's language: PostgreSQL's text search configurations
def test_a_question_in_another_language_gets_the_search_s_best_passage_not_the_top_cosine():
    """Passage [1] is the search's best (both legs); [2] has the higher cosine alone."""
    best = Passage(
        1,
        "Package activity logs\nYou can check package activity history in the log files.\n"
        "file | content\n/var/log/dpkg.log | Log of dpkg level activity\n"
        "/var/log/apt/term.log | Log of generic APT activity\n",
        "ref.md",
        "",
        "Package activity logs",
        score=0.85,
    )
    closer = Passage(2, "The dpkg command is the lowest level tool.", "ref.md", "", "dpkg", 0.86)
    answer = extractive_answer("Wo finde ich das Protokoll der Paketaktivitäten?", [closer, best])
    assert answer.startswith("The passage closest to your question, in the manual's language:")
    assert "| /var/log/dpkg.log | Log of dpkg level activity [1] |" in answer
    assert "lowest level" not in answer


@pytest.mark.django_db  # the question's language: PostgreSQL's text search configurations
def test_a_question_in_another_language_that_asks_no_procedure_gets_sentences_not_a_list():
    text = (
        "Good password\n"
        "You should choose a good password which consists of at least 6 to 8 characters "
        "including one or more characters from each of the following sets.\n"
        "- Lower case alphabetics\n- Digits 0 through 9\n- Punctuation marks\n"
    )
    passage = Passage(1, text, "ref.md", "", "Good password", score=0.84)
    answer = extractive_answer("Wat is een goed wachtwoord, hoe lang moet het zijn?", [passage])
    assert "at least 6 to 8 characters" in answer
    assert "1. " not in answer


def test_how_do_i_after_a_sentence_of_context_gets_the_list_that_fits_of_several():
    """Two numbered lists in one section, each announced by its own line: the question
    names the situation first ("I lost the root password. How do I ...?")."""
    text = (
        "Securing the root password\n"
        "With physical access to hard disk, resetting the password is easy with following "
        "steps.\n"
        "1.  Move the hard disk to a PC with CD bootable UEFI/BIOS.\n"
        "2.  Mount root partition with read/write access.\n"
        '3.  Edit "/etc/passwd" in the root partition and make the second entry empty.\n'
        "If you have edit access to the GRUB menu entry at boot time, it is even easier "
        "with following steps.\n"
        '1.  Boot system with the kernel parameter changed to "root=/dev/hda6 rw '
        'init=/bin/sh".\n'
        '2.  Edit "/etc/passwd" and make the second entry for the root account empty.\n'
        "3.  Reboot system.\n"
    )
    passage = Passage(1, text, "ref.md", "", "Authentication › Securing the root password")
    answer = extractive_answer(
        "I lost the root password but can edit the GRUB entry. How do I get a root shell?",
        [passage],
    )
    assert answer.startswith("Here are the steps from the documents (Securing the root password)")
    assert "1. Boot system with the kernel parameter changed to" in answer
    assert "init=/bin/sh" in answer and "3. Reboot system. [1]" in answer
    assert "Move the hard disk" not in answer  # the other list is another procedure


def test_paragraphs_stop_growing_at_the_answer_s_word_budget(monkeypatch):
    from chats.answering import extractive

    filler = " ".join(f"Filler sentence number {n} says nothing at all here." for n in range(8))
    text = f"Belts\nReplace the drive belt every 2,000 hours. {filler}\n"
    passage = Passage(1, text, "m.pdf", "p. 2", "Belts")
    whole = extractive_answer("How often is the drive belt replaced?", [passage])
    assert "number 7" in whole  # 9 sentences, 78 words: within PARAGRAPH_WORDS

    monkeypatch.setattr(extractive, "ANSWER_WORDS", 30)
    short = extractive_answer("How often is the drive belt replaced?", [passage])
    # 7 words, then 9 a sentence: two more fit in 30
    assert "every 2,000 hours." in short and "number 1" in short and "number 2" not in short


def test_a_heading_after_a_quoted_sentence_is_not_taken_for_its_command():
    text = (
        "Verification\n"
        "The installation of debsums enables verification of installed package files.\n"
        "debsums -s\n"
        "2.4.3. Protection against package problems\n"
    )
    passage = Passage(1, text, "ref.md", "", "Verification")
    answer = extractive_answer("How do I verify installed package files?", [passage])
    assert "- `debsums -s` [1]" in answer
    assert "2.4.3" not in answer


def test_a_line_announcing_a_list_brings_the_whole_list_nested_under_it():
    text = (
        "Create diagnostic data collection\n"
        "Step 1. Advanced, Generate data collection\n"
        "Step 2. Create data collection following the questions in the screen:\n"
        "• Machine number on the type plate,\n"
        "• Description of What went wrong,\n"
        "• When did the problem start,\n"
        "• Other information HGG might need\n"
        "Send to HGG\n"
        "You are now ready to send the information to HGG.\n"
    )
    passage = Passage(1, text, "faq.pdf", "p. 1", "Create diagnostic data collection")
    answer = extractive_answer("What must I fill in when I create a data collection?", [passage])

    assert "- Create data collection following the questions in the screen: [1]\n" in answer
    assert "  - Machine number on the type plate, [1]\n" in answer
    assert "  - When did the problem start, [1]\n" in answer  # the third item too
    assert "  - Other information HGG might need [1]" in answer
    assert "•" not in answer  # the list's own markers go
    html = render_answer(answer)
    assert html.count("<ul>") == 2  # the items nested under the line announcing them


def test_a_matched_step_brings_the_condition_after_it_and_its_outcome():
    text = (
        "3.4 Calibration of the trolley\n"
        "▪ Select Home trolley.\n"
        "Subsequently, to make sure that the home position of the trolley is correct:\n"
        "▪ Accurately measure the distance between the rear of the trolley and the hook again.\n"
        "If the distance = 35 mm (1⅜”):\n"
        "➢ Calibration of the trolley was successful.\n"
        "▪ Select Return to home.\n"
        "If the distance is ≠ 35 mm (1⅜”):\n"
        "▪ Repeat the calibration procedure.\n"
    )
    passage = Passage(1, text, "cal.pdf", "p. 7", "3.4 Calibration of the trolley")
    answer = extractive_answer(
        "What distance between trolley and hook means the trolley calibration succeeded?",
        [passage],
    )
    assert "- If the distance = 35 mm (1⅜”): [1]" in answer
    assert "Calibration of the trolley was successful. [1]" in answer
    assert answer.count("measure the distance") == 1  # the matched step once, not again


@pytest.mark.django_db  # the question's language: PostgreSQL's text search configurations
def test_a_question_in_another_language_is_matched_by_the_name_it_shares_with_the_manual():
    """ "ifconfig" is a word of no language: the sentences holding it answer the Dutch
    question, not the start of the search's best passage."""
    path = Passage(
        1,
        'The "$PATH" variable\nWhen you type a command into the shell, the shell searches '
        "the command in the list of directories contained in the $PATH environment "
        "variable.\nFor example, the ifconfig command needs to be issued with full path "
        'as "/sbin/ifconfig".\n',
        "ref.md",
        "",
        'The simple shell command › The "$PATH" variable',
        score=0.835,
    )
    iproute = Passage(
        2,
        "Iproute2 commands\nThese are the translation from the obsolete net-tools:\n"
        "obsolete net-tools | new iproute2 etc. | manipulation\n"
        "ifconfig(8) | ip addr | protocol (IP or IPv6) address on a device\n"
        "route(8) | ip route | routing table entry\n",
        "ref.md",
        "",
        "Network setup › Iproute2 commands",
        score=0.827,
    )
    answer = extractive_answer("Welke vervanger van ifconfig moet ik gebruiken?", [path, iproute])
    assert answer.startswith("The passage closest to your question, in the manual's language:")
    assert "| ifconfig(8) | ip addr | protocol (IP or IPv6) address on a device [2] |" in answer
    assert "the shell searches" not in answer  # the passage's start says nothing of it


def test_a_command_line_matched_as_a_sentence_too_is_quoted_once_as_a_command():
    text = (
        "The MD5 sum\n"
        "The md5sum command makes and checks files of MD5 sums.\n"
        "$ md5sum foo bar >baz.md5\n"
        "$ cat baz.md5\n"
        "$ md5sum -c baz.md5\n"
        "foo: OK\n"
    )
    passage = Passage(1, text, "ref.md", "", "Data recording › The MD5 sum")
    answer = extractive_answer("Which md5sum command checks baz.md5?", [passage])
    assert "- `$ md5sum -c baz.md5` [1]" in answer
    for command in ("md5sum foo bar >baz.md5", "cat baz.md5", "md5sum -c baz.md5"):
        assert answer.count(command) <= 1, answer


def test_a_plural_meets_its_singular_when_the_word_ends_in_a_silent_e():
    """ "file types" in the question, "Cutting files such as: ... (.pcd)" in the manual:
    "file"/"files" and "type"/"types" were different terms (file/fil), so the line that
    lists the types scored below the lines around it and was left out."""
    text = (
        "3.2 Diagnostic data collection\n"
        "In addition to the measurement results, HGG needs a download of relevant files.\n"
        "▪ In the Advanced menu: select Generate data collection (extension .7z).\n"
        "▪ In the Description box: enter the machine number and what went wrong.\n"
        "▪ In the Additional files box: add additional cutting files* from external "
        "applications.\n"
        "* Cutting files such as: ProCAM project (.pcd) | DSTV files (.dstv) | NC Data (.nc1)\n"
        "▪ Use the Add button and select the files with which there is a cutting problem.\n"
        "▪ Select Create Collection.\n"
        "▪ Collect drawings of the material with which there is a cutting problem.\n"
        "▪ Make an even more extensive description of the cutting problem.\n"
        "Please do not send your files by email: most emails have a data limit of 10 MB.\n"
        "▪ Send the collected file to the HGG technical service department.\n"
    )
    other = (
        "Create diagnostic data collection\n"
        "Create data collection following the questions in the screen:\n"
        "Advanced, Generate data collection\n"
        "Add additional cutting files from external applications\n"
        "Most recent data collection file, e.g.: 2024_02_25- 12_13_24_341_.7z\n"
    )
    passages = [
        Passage(1, text, "measurement.pdf", "pp. 8–9", "3.2 Diagnostic data collection", 0.87),
        Passage(2, other, "data collection.pdf", "p. 1", "Create data collection", 0.86),
    ]
    answer = extractive_answer(
        "Which cutting file types can I add to the data collection?", passages
    )
    assert "(.pcd)" in answer and "(.dstv)" in answer and "(.nc1)" in answer, answer


def test_a_field_of_its_section_answers_which_tool_the_section_needs():
    """ "Necessary tool: Spirit level" holds only "tool" of the question: what the tool is
    for is the section's heading. A field (a short label, a colon, its value on the line
    or the lines after it) whose label the question names is about its section."""
    text = (
        "3. Calibration procedures › 3.1 Calibration of chuck rotation\n"
        "3.1 Calibration of chuck rotation\n"
        "Calibration of the chuck rotation makes sure that the home position of both "
        "chucks is level. If one the chucks is not level, it can have a negative effect on "
        "the cutting quality.\n"
        "This calibration procedure applies to the front and rear chuck.\n"
        "Necessary tool: Spirit level\n"
        "▪ In the Calibration menu: select the button Chuck rotation calibration.\n"
        "▪ Select Home chucks to put the chucks at their home position.\n"
        "▪ Manually turn the chuck until it is level.\n"
    )
    aligning = (
        "Alignment calibration of the chucks\n"
        "You must do this calibration if the laser value changes more than 2 (mm).\n"
        "Necessary tools:\n"
        "Allen key 3 mm Some versions of the machine have larger Allen screws.\n"
        "Wrench 24\n"
        "To align the chucks, do the procedure that follows: remove the cover of the "
        "trolley.\n"
        "▪ Loosen the 4 bolts slightly with the wrench.\n"
        "▪ Slightly move the rear chuck to get it aligned with the front chuck.\n"
        "The preferred movement is to slide the rear chuck; if you must turn the chuck to "
        "align it, turn the chuck carefully.\n"
    )
    section = "3. Calibration procedures › 3.1 Calibration of chuck rotation"
    rotation = Passage(1, text, "calibration.pdf", "p. 6", section, 0.90)
    answer = extractive_answer(
        "Which tool do I need for the calibration of the chuck rotation?", [rotation]
    )
    assert "- Necessary tool: Spirit level [1]" in answer, answer

    align = Passage(1, aligning, "alignment.pdf", "p. 1", "Alignment calibration of the chucks")
    answer = extractive_answer("Which tools do I need to align the chucks?", [align])
    assert "Allen key 3 mm" in answer and "Wrench 24" in answer, answer


def test_an_faq_s_numbered_question_is_a_heading_not_a_quote():
    text = (
        "5 R Add-On Packages\n"
        "5.3 How can add-on packages be used?\n"
        "To find out which additional packages are available on your system, type "
        "library() at the R prompt.\n"
        "5.4 How can add-on packages be removed?\n"
        "Use remove.packages() to remove add-on packages from a library.\n"
    )
    passage = Passage(1, text, "R-FAQ.pdf", "p. 30", "5 R Add-On Packages")
    answer = extractive_answer("How can add-on packages be used?", [passage])
    assert "library() at the R prompt. [1]" in answer, answer
    assert "5.3 How can" not in answer and "5.4 How can" not in answer, answer


@pytest.mark.django_db  # the question's language: PostgreSQL's text search configurations
def test_a_question_in_another_language_gets_the_sentences_closest_in_meaning():
    """The multilingual model picks the sentences across languages: the fact is past the
    first 120 words of the search's best passage, which used to be quoted from its start."""
    intro = (
        "The system logging daemon writes messages of the kernel and of the services to "
        "files under the log directory. Each service may have its own file, and the "
        "daemon may rotate them every week, keeping a few compressed copies of the older "
        "ones. Messages are sorted by facility and priority, as its configuration file "
        "says, and some of them are also sent to the console or to remote hosts when the "
        "administrator asks for it. The journal of systemd keeps a binary copy of the same "
        "messages that journalctl reads, with their metadata, and it may be kept in "
        "memory only or on the disk. Old messages are removed when the journal reaches "
        "its size limit, which its configuration file sets for the whole system and for "
        "each user separately.\n"
    )
    text = (
        "Clearing file contents\n"
        + intro
        + "In order to clear the contents of a file such as a log file, do not use rm to "
        "delete the file and then create a new empty file, because the file may still be "
        "accessed in the interval between commands. The following is the safe way to "
        "clear the contents of the file.\n"
        "$ :>file_to_be_cleared\n"
    )
    passage = Passage(1, text, "ref.md", "", "Clearing file contents", score=0.83)
    answer = extractive_answer(
        "Hoe maak ik een logbestand leeg zonder het te verwijderen?", [passage]
    )
    assert answer.startswith("The passage closest to your question, in the manual's language:")
    assert "`$ :>file_to_be_cleared`" in answer, answer


def test_a_hard_wrapped_paragraph_is_quoted_from_the_start_of_its_sentence():
    """An Info manual as plain text, filled at 72 columns: each line was read as a
    sentence, so a quote began mid-sentence ("increase the amount of buffer space ...")."""
    text = (
        "3 Actions › 3.3 Multiple Files › 3.3.2 Limiting Command Size\n"
        "3.3.2 Limiting Command Size\n"
        "'xargs' gives you control over how many arguments it passes to the\n"
        "command each time it executes it.  By default, it uses up to\n"
        "'ARG_MAX' - 2k, or 128k, whichever is smaller, characters per command.\n"
        "It uses as many lines and arguments as fit within that limit.  You can\n"
        "use the '-s' option to increase the amount of buffer space that xargs\n"
        "uses, and you can also limit the number of arguments it passes to a\n"
        "command with the '-n' option.\n"
    )
    section = "3 Actions › 3.3 Multiple Files › 3.3.2 Limiting Command Size"
    passage = Passage(1, text, "find.txt", "", section)
    answer = extractive_answer("How do I increase the buffer space xargs uses?", [passage])
    assert "You can use the '-s' option to increase the amount of buffer space" in answer, answer
    assert "- use the" not in answer and "- uses, and" not in answer


@pytest.mark.django_db  # the question's language: PostgreSQL's text search configurations
def test_another_language_embeds_a_budget_of_sentences_once_never_a_footnote(monkeypatch):
    """The cross-language answer embeds the passages' sentences per question: at most
    FOREIGN_MAX_SENTENCES of them, in the passages' order; a sentence embedded for an
    earlier question is not embedded again; a PDF's footnote ("1 This is normally ...")
    and the end of a sentence cut by a page break ("missing and cannot be converted.1")
    never open a quote (seen under make run: a Dutch CSV question's first quote)."""
    from chats.answering import foreign
    from documents.embeddings import get_provider

    embedded: list[str] = []
    real = type(get_provider()).embed_documents

    def counting(self, texts):  # the real model, its inputs noted
        embedded.extend(texts)
        return real(self, texts)

    monkeypatch.setattr(type(get_provider()), "embed_documents", counting)
    foreign._vectors.clear()
    csv = (
        "Convenience functions read.csv and read.delim provide arguments to read.table "
        "appropriate for CSV files exported from spreadsheets.\n"
        "missing and cannot be converted.1\n"
        "1 This is normally fast as looking at the first entry rules out most of the "
        "possibilities.\n"
    )
    filler = "".join(
        f"Paragraph {n} of the manual is about the colour of the lines in plot {n}.\n"
        for n in range(60)
    )
    passages = [
        Passage(1, csv + filler, "R-data.pdf", "p. 9", "2.1 Variations on read.table", 0.85),
        Passage(2, filler.replace("Paragraph", "Page"), "R-data.pdf", "p. 10", "2.2 Files", 0.84),
    ]
    question = "Hoe lees ik een bestand met kommagescheiden waarden in?"  # no shared name
    answer = extractive_answer(question, passages)
    assert answer.startswith("The passage closest to your question"), answer
    assert len(embedded) == foreign.FOREIGN_MAX_SENTENCES  # of 121
    assert "read.csv and read.delim" in embedded[0] and "read.csv" in answer
    assert not any(t.startswith(("1 This", "missing and")) for t in embedded), embedded
    first = answer.split("\n\n")[1]
    assert not first.startswith(("- 1 This", "- missing")), answer

    embedded.clear()
    assert extractive_answer(question, passages) == answer
    assert embedded == []  # every sentence's vector was kept from the first time
