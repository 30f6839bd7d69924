"""Check a SpecificCharacterSet and what it can hold (PS3.3 C.12.1.1.2).

pydicom, asked to encode what a character set cannot hold, warns and writes
replacement characters, and it reads the default repertoire (``ISO_IR 6``) as
Latin-1. A filter must reach the PACS as typed, so the check here is strict:
every defined term is known, and every character encodes in one of the terms.
"""

from collections.abc import Sequence

from pydicom.charset import python_encoding

from pacscommon.errors import InputError

# PS3.5 6.1.2.2: the default character repertoire is ASCII.
_ASCII_TERMS = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6"})
# PS3.3 C.12.1.1.2: several values only with ISO 2022 code extensions.
_ISO_2022 = "ISO 2022"
SOURCE = "--character-set"
_HINT = (
    "give a defined term of DICOM PS3.3 C.12.1.1.2, such as ISO_IR 192 (UTF-8), "
    "ISO_IR 100 (Latin-1) or ISO 2022 IR 6\\ISO 2022 IR 87 (Japanese); "
    "pacsquery --help lists them"
)


def defined_terms() -> list[str]:
    """Return the defined terms that can be encoded, in order."""
    return sorted(term for term in python_encoding if term)


def check_terms(charset: str) -> list[str]:
    """Return the terms of a SpecificCharacterSet typed with backslashes, checked."""
    terms = [term.strip() for term in charset.split("\\")]
    for term in terms:
        if term not in python_encoding:
            raise InputError(f"{SOURCE} {charset!r}: {term!r} is unknown; {_HINT}")
    extended = all(not t or t.startswith(_ISO_2022) for t in terms)
    if len(terms) > 1 and not extended:
        raise InputError(
            f"{SOURCE} {charset!r}: several terms are for ISO 2022 code extensions "
            "only; give one term, or ISO 2022 terms only"
        )
    return terms


def codecs_of(terms: Sequence[str]) -> list[str]:
    """Return the Python codecs that can encode text in ``terms``."""
    codecs = ["ascii" if t in _ASCII_TERMS else python_encoding[t] for t in terms]
    # With code extensions, G0 holds the default repertoire whatever the terms.
    return codecs if len(codecs) == 1 else ["ascii", *codecs]


def unencodable(text: str, terms: Sequence[str]) -> str:
    """Return the characters of ``text`` that no term can encode, in order."""
    codecs = codecs_of(terms)
    missing = [c for c in dict.fromkeys(text) if not _encodes(c, codecs)]
    return "".join(missing)


def _encodes(char: str, codecs: Sequence[str]) -> bool:
    """Return whether one of ``codecs`` encodes ``char`` without loss."""
    for codec in codecs:
        try:
            char.encode(codec)
        except UnicodeError:
            continue
        return True
    return False


def check_encodable(charset: str, values: Sequence[str]) -> None:
    """Raise an input error unless every value encodes in ``charset``."""
    terms = check_terms(charset)
    for value in values:
        missing = unencodable(value, terms)
        if missing:
            raise InputError(
                f"{SOURCE} {charset!r} cannot encode {missing!r} of the filter "
                f"{value!r}; use ISO_IR 192 (UTF-8), or a character set that holds "
                "them and that the PACS reads"
            )
