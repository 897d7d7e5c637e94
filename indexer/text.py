"""Text clean-up shared by every extractor: Unicode NFC, no control or bidi characters, tidy whitespace."""

from __future__ import annotations

import re
import unicodedata

# Bidi embedding/override/isolate controls and marks: invisible, and used to disguise text.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE = "\u00ad\u200b\u2060\ufeff"
_DROP = {ord(c): None for c in _BIDI + _INVISIBLE}
# C0/C1 controls except tab and newline; lone surrogates cannot be encoded as UTF-8 at all.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_HYPHEN_BREAK_RE = re.compile(r"(\w)-\n(\w)")
_MANY_NEWLINES_RE = re.compile(r"\n{3,}")
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
# Characters of scripts written without spaces between words (Han, kana) and their punctuation (CJK symbols,
# fullwidth forms): a line break next to one of them stands for no space. Hangul is written with spaces.
_NO_SPACE_RE = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# A number or Latin word broken by the wrap ("每次9" / "5分钟"): what surrounds it decides.
_TRAILING_TOKEN_RE = re.compile(r"[0-9A-Za-z.,%]+\Z")
_LEADING_TOKEN_RE = re.compile(r"\A[0-9A-Za-z.,%]+")


def _rejoin_hyphenated(match: re.Match[str]) -> str:
    """A word hyphenated at a line break loses the hyphen ("learn-/ing"); a hyphen that belongs to the text
    stays ("2019-/2020", "Jean-/Paul")."""
    before, after = match.group(1), match.group(2)
    if before.isalpha() and after.isalpha() and after.islower():
        return before + after
    return before + "-" + after


def normalise_text(text: str) -> str:
    """Return NFC text without controls, bidi marks or lone surrogates, with single spaces and at most one
    blank line between paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = _CONTROL_RE.sub("", text.translate(_DROP))
    text = unicodedata.normalize("NFC", text)
    text = _HYPHEN_BREAK_RE.sub(_rejoin_hyphenated, text)
    lines = [_SPACES_RE.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES_RE.sub("\n\n", "\n".join(lines)).strip()


def is_cjk(char: str) -> bool:
    """True for Chinese, Japanese and Korean characters, which are written without spaces."""
    return bool(_CJK_RE.match(char))


def join_lines(lines: list[str]) -> str:
    """Join wrapped lines of one paragraph: with a space, or with nothing where the break is next to Chinese or
    Japanese (an ideograph, kana, CJK punctuation, or a number or Latin word written against one), since such
    lines wrap between any two characters."""
    parts: list[str] = []
    for line in filter(None, lines):
        if parts and not _joins_without_space(parts[-1], line):
            parts.append(" ")
        parts.append(line)
    return "".join(parts)


def _joins_without_space(before: str, after: str) -> bool:
    if _NO_SPACE_RE.match(before[-1]) or _NO_SPACE_RE.match(after[0]):
        return True
    left, right = _TRAILING_TOKEN_RE.search(before), _LEADING_TOKEN_RE.match(after)
    if left is None or right is None:
        return False
    outer_left, outer_right = before[: left.start()], after[right.end() :]
    return bool(outer_left and _NO_SPACE_RE.match(outer_left[-1])) or bool(
        outer_right and _NO_SPACE_RE.match(outer_right[0])
    )
