"""The content words of a text, as the offline answerer and the answer guard compare
them: lower case, stop words (and the words of how a question is asked) left out, each
reduced by a crude, deterministic stem."""

from __future__ import annotations

import re

_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can cannot could did do does doing done down
    during each either else ever every few for from further get gets got had has have
    having he her here hers herself him himself his how i if in into is it its itself
    just let like may me might more most must my myself need needs no nor not now of off
    often on once one only or other ought our ours ourselves out over own per please
    same shall she should so some such than that the their theirs them themselves then
    there these they this those through thus to too under until up upon us use used
    using very via was we were what when where whether which while who whom whose why
    will with within without would yes yet you your yours yourself yourselves
    anything something tell explain show describe know want way ways thing things
    mean means meaning happen happens find say says called
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"\w+", re.UNICODE)
_SUFFIXES = (
    ("ations", "at"),
    ("ation", "at"),
    ("ings", ""),
    ("ing", ""),
    ("ies", "y"),
    ("es", ""),
    ("ed", ""),
    ("s", ""),
)


_DOUBLED = re.compile(r"([b-df-hj-km-np-rtv-y])\1$")  # "cutt", "sett", "stopp"; not ll/ss/zz


def _stem(word: str) -> str:
    """A crude, deterministic stem, enough for "calibrate", "calibrated", "calibrating"
    and "calibration" (calibrat), "belt"/"belts" or "battery"/"batteries" to meet, and
    "file"/"files" (fil), "type"/"types", "cut"/"cutting", "set"/"settings"."""
    if not word.endswith("ss"):
        for suffix, replacement in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + replacement
                # A consonant doubled before -ing or -ed ("cutting", "stopped") is one,
                # as in the word itself; a word that ends doubled ("add") keeps it.
                if suffix in ("ings", "ing", "ed") and len(word) >= 4:
                    word = _DOUBLED.sub(r"\1", word)
                break
    # The silent e goes, so the singular meets its plural ("file", "files": fil).
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def content_terms(text: str) -> set[str]:
    """Stems of the content words of text (lower case, stop words left out)."""
    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOP_WORDS or (len(word) < 2 and not word.isdigit()):
            continue
        terms.add(_stem(word))
    return terms


def in_another_language(question: str) -> bool:
    """Whether the question is written in another language than the library's
    (documents.languages tells; SEARCH_TEXT_CONFIG is the library's)."""
    from documents.languages import foreign_language

    return foreign_language(question) is not None


# A word below this on wordfreq's Zipf scale in the question's language and the
# library's names something ("ifconfig" 1.4, "dpkg" 1.4, "MTU" 2.7; "TCP" 3.1, "PDF" 3.8
# are too common to pick sentences by). Chosen on bench/eval's tune split.
NAME_ZIPF = 3.0


def shared_terms(question: str, held: set[str]) -> set[str]:
    """For a question in another language than the library's, its terms that the
    passages hold too (`held`), when one of them names something (rare in both
    languages: "Welke vervanger van ifconfig moet ik gebruiken?"): the words it shares
    with the manual, by which sentences can be picked across languages. Empty for a
    question in the library's language, or sharing no name."""
    from django.conf import settings

    from documents.languages import foreign_language, word_zipf

    language = foreign_language(question)
    if language is None:
        return set()
    own = settings.SEARCH_TEXT_CONFIG
    shared = content_terms(question) & held
    names = set().union(
        *(
            content_terms(word)
            for word in _WORD.findall(question)
            if max(word_zipf(word, language), word_zipf(word, own)) < NAME_ZIPF
        )
    )
    return shared if shared & names else set()
