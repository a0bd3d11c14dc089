"""How the stores compare text in a search: in lower case, code point by code point."""

from __future__ import annotations

# str.lower() maps two letters otherwise than one code point at a time: "İ" to "i̇" (two
# code points) and "Σ" to "ς" at the end of a word. Given their one-code-point lower case
# first, text lowers as PostgreSQL's lower() lowers it (on a UTF-8 database with the libc
# provider), and a part of a name as it does within the name: "ΠΑΠΑΣ" is found in
# "ΠΑΠΑΣΤΕΡΓΙΟΥ".
_ONE_FOR_ONE = str.maketrans(
    {"\N{LATIN CAPITAL LETTER I WITH DOT ABOVE}": "i", "Σ": "\N{GREEK SMALL LETTER SIGMA}"}
)


def lower(text: str) -> str:
    """``text`` in lower case, each code point by Unicode's simple lower-case mapping."""
    return text.translate(_ONE_FOR_ONE).lower()
