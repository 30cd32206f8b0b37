"""How message bodies and queries are cut into words, the same way on both backends.

Both backends split on what is not a letter, digit or mark, and fold case: PostgreSQL with the
`simple` configuration (no stemming, no stop words, no language guessed), SQLite with FTS5's
`unicode61` tokenizer (marks kept inside words, so Devanagari or Arabic with vowel signs stay
whole). Two things neither does well are done here first, identically on both sides
(`agenthub_search_text` is the same function in SQL, see the 0004 migration):

- ASCII punctuation, the underscore included, becomes a space: `agenthub/messages/store.py`,
  `foo.bar()`, `snake_case`, `<b>bold</b>` and `**bold**` are words, not one opaque token
  (PostgreSQL's parser would otherwise keep file paths, hosts and versions whole).
- Chinese, Japanese and Korean characters (and their punctuation) are written without spaces
  between words: each becomes a word of its own, and a query term written in them matches them
  as a phrase of consecutive characters.

A query is split on whitespace into terms; every term must match (AND), each as a phrase of its
words (`foo.bar` matches "foo bar" and "foo.bar", not "bar foo").
"""

from __future__ import annotations

import re
import unicodedata

MAX_QUERY_CHARS = 256
MAX_TERMS = 16

# Hiragana, katakana, CJK punctuation and ideographs, Hangul syllables, compatibility
# ideographs, full-width forms. The same ranges as the SQL function.
_CJK = "\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
CJK_CLASS = f"[{_CJK}]"
ASCII_PUNCT_CLASS = r"[!-/:-@\[-`{-~]"
_CJK_RE = re.compile(CJK_CLASS)
_PUNCT_RE = re.compile(ASCII_PUNCT_CLASS + "+")

# FTS5's unicode61 tokenizer, told that marks belong to words.
SQLITE_TOKENIZE = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'"

# The SQL twin of `search_text`, for PostgreSQL (IMMUTABLE: it backs a generated column).
PG_FUNCTION = rf"""
CREATE OR REPLACE FUNCTION agenthub_search_text(body text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
SELECT regexp_replace(
    regexp_replace(body, '{CJK_CLASS}', ' \& ', 'g'), '{ASCII_PUNCT_CLASS}+', ' ', 'g')
$$
"""


def search_text(body: str) -> str:
    """What the full-text index reads of a body (SQLite; PostgreSQL runs the SQL twin)."""
    return _PUNCT_RE.sub(" ", _CJK_RE.sub(lambda m: f" {m.group()} ", body))


def query_terms(query: str) -> list[str]:
    """The query's terms, each already made `search_text`; empty ones (punctuation) dropped."""
    terms = []
    for raw in unicodedata.normalize("NFC", query).split():
        words = search_text(raw).split()
        if words and any(_has_word_char(w) for w in words):
            terms.append(" ".join(words))
    return terms


def _has_word_char(word: str) -> bool:
    return any(unicodedata.category(c)[0] in "LNM" for c in word)


def fts5_query(terms: list[str]) -> str:
    """An FTS5 MATCH expression: each term a quoted phrase, all of them required."""
    return " ".join('"' + t.replace('"', '""') + '"' for t in terms)
