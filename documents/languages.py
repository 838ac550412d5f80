"""Which language a question is written in, from PostgreSQL's own stop-word lists.

A question in another language than the library's (SEARCH_TEXT_CONFIG) shares almost no
words with its passages, so the answer guard's word coverage says nothing about it; a
multilingual embedding model's similarity still does (chats.answering.retrieval).
Short questions carry enough function words ("welke", "het", "die", "ich", "the") to
tell: the language whose list holds the most of the question's words wins, the library's
own on a tie.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.db import connection

# Snowball configurations that ship with PostgreSQL, each with a stop-word list.
LANGUAGES = (
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "russian",
    "spanish",
    "swedish",
)


def question_language(question: str) -> str:
    """The text search configuration whose stop words the question uses most
    (SEARCH_TEXT_CONFIG when none has more than it). Remembered per process: one
    answer asks it of its question up to five times (search, guard, answerer), and
    each asking is a database round trip through ts_debug in 14 configurations."""
    own = settings.SEARCH_TEXT_CONFIG
    if not question.strip():
        return own
    return _question_language(question, own)


@functools.lru_cache(maxsize=4096)
def _question_language(question: str, own: str) -> str:
    # The stop-word lists are files of the server's installation: the answer for a
    # question and a library language does not change while the process runs.
    languages = sorted({own, *LANGUAGES})
    with connection.cursor() as cursor:
        # ts_debug gives each word's lexemes; an empty array marks a stop word.
        cursor.execute(
            "SELECT l.cfg, (SELECT count(*) FROM ts_debug(l.cfg::regconfig, %s) d "
            "WHERE d.lexemes = '{}') FROM unnest(%s::text[]) AS l(cfg)",
            [question, languages],
        )
        counts = dict(cursor.fetchall())
    best = max(counts.values(), default=0)
    if counts.get(own, 0) >= best:
        return own
    return min(cfg for cfg, count in counts.items() if count == best)


def foreign_language(query: str) -> str | None:
    """The question's language when it is another than the library's, else None."""
    language = question_language(query)
    return None if language == settings.SEARCH_TEXT_CONFIG else language


def stop_lexemes(cursor, query: str, language: str) -> frozenset[str]:
    """The library's lexemes (SEARCH_TEXT_CONFIG) of the question's words that are stop
    words of its own language: "de", "die", "man" of a Dutch or German question are
    function words there, but rare words of an English library, which a passage holding
    them by chance ("de" of a locale) would rank by."""
    cursor.execute(
        "SELECT DISTINCT t.lexeme FROM ts_debug(%s::regconfig, %s) d"
        " CROSS JOIN LATERAL unnest(to_tsvector(%s::regconfig, d.token)) t"
        " WHERE d.lexemes = '{}'",
        [language, query, settings.SEARCH_TEXT_CONFIG],
    )
    return frozenset(row[0] for row in cursor.fetchall())


# wordfreq's language codes for the configurations above.
WORDFREQ_CODES = {
    "danish": "da",
    "dutch": "nl",
    "english": "en",
    "finnish": "fi",
    "french": "fr",
    "german": "de",
    "hungarian": "hu",
    "italian": "it",
    "norwegian": "nb",
    "portuguese": "pt",
    "russian": "ru",
    "spanish": "es",
    "swedish": "sv",
}


def word_zipf(word: str, language: str) -> float:
    """How common a word is in a language (a text search configuration's name), on
    wordfreq's Zipf scale: about 7 for "the", 4-5 for "budget", 0 for a word it has never
    seen ("mokutil"). wordfreq ships its word lists inside its wheel: nothing is
    downloaded. An unknown configuration counts as English."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, WORDFREQ_CODES.get(language, "en"))
