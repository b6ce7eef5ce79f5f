"""Porter stemmer with the exact behaviour of Lucene's ``PorterStemmer``.

Lucene's ``PorterStemFilter`` uses a port of Martin Porter's own reference implementation,
which differs from the algorithm as published in 1980 (and from Snowball's "porter"):

* step 2 (here ``_step3``) maps ``-bli`` to ``-ble`` (the paper has ``-abli`` -> ``-able``)
  and has the extra rule ``-logi`` -> ``-log``;
* words of two letters or fewer are returned unchanged;
* ``y`` is a consonant at the start of a word and after a vowel, a vowel after a consonant.

The step names follow the reference code (six steps; step 2 turns a final ``y`` into ``i``).
Only ASCII letters take part in the suffix rules; any other character counts as a consonant,
which is what the reference code does with non-letters.
"""

from __future__ import annotations

_VOWELS = frozenset("aeiou")

# Suffix rules of the reference code's step3 and step4, keyed by the character that selects
# the rule group (second-to-last letter for step3, last letter for step4), tried in order;
# the first suffix that matches ends the group whether or not its replacement applies.
_STEP3_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
    "g": (("logi", "log"),),
}
_STEP4_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
    "i": (("iciti", "ic"),),
    "l": (("ical", "ic"), ("ful", "")),
    "s": (("ness", ""),),
}
# Step 5 suffixes keyed by the second-to-last letter; "ion" has an extra condition.
_STEP5_SUFFIXES: dict[str, tuple[str, ...]] = {
    "a": ("al",),
    "c": ("ance", "ence"),
    "e": ("er",),
    "i": ("ic",),
    "l": ("able", "ible"),
    "n": ("ant", "ement", "ment", "ent"),
    "o": ("ion", "ou"),
    "s": ("ism",),
    "t": ("ate", "iti"),
    "u": ("ous",),
    "v": ("ive",),
    "z": ("ize",),
}


class _Word:
    """Mutable state of one stemming run: buffer ``b``, end ``k`` and stem end ``j``."""

    __slots__ = ("b", "k", "j")

    def __init__(self, word: str) -> None:
        self.b = list(word)
        self.k = len(word) - 1
        self.j = 0

    def cons(self, i: int) -> bool:
        """True when b[i] is a consonant (``y`` depends on the letter before it)."""
        ch = self.b[i]
        if ch in _VOWELS:
            return False
        if ch == "y":
            return True if i == 0 else not self.cons(i - 1)
        return True

    def _skip(self, i: int, consonant: bool) -> int:
        """First index >= i in b[0..j] whose consonant-ness differs from `consonant` (j+1 if none)."""
        while i <= self.j and self.cons(i) == consonant:
            i += 1
        return i

    def m(self) -> int:
        """Number of vowel-consonant sequences in b[0..j]."""
        n = 0
        i = self._skip(0, consonant=True)  # leading consonants
        while True:
            i = self._skip(i, consonant=False)  # a run of vowels ...
            if i > self.j:
                return n
            i = self._skip(i, consonant=True)  # ... closed by consonants counts once
            n += 1
            if i > self.j:
                return n

    def vowel_in_stem(self) -> bool:
        return any(not self.cons(i) for i in range(self.j + 1))

    def doublec(self, j: int) -> bool:
        """True when b[j-1], b[j] are the same consonant."""
        if j < 1 or self.b[j] != self.b[j - 1]:
            return False
        return self.cons(j)

    def cvc(self, i: int) -> bool:
        """True when b[i-2..i] is consonant-vowel-consonant and b[i] is not w, x or y."""
        if i < 2 or not self.cons(i) or self.cons(i - 1) or not self.cons(i - 2):
            return False
        return self.b[i] not in ("w", "x", "y")

    def ends(self, s: str) -> bool:
        """True when b[0..k] ends with s; then j is set to the end of the stem before s."""
        length = len(s)
        start = self.k - length + 1
        if start < 0:
            return False
        if "".join(self.b[start : self.k + 1]) != s:
            return False
        self.j = self.k - length
        return True

    def setto(self, s: str) -> None:
        """Replace b[j+1..k] by s."""
        del self.b[self.j + 1 :]
        self.b.extend(s)
        self.k = self.j + len(s)

    def r(self, s: str) -> None:
        if self.m() > 0:
            self.setto(s)

    def text(self) -> str:
        return "".join(self.b[: self.k + 1])


def _step1(w: _Word) -> None:
    """Plurals and -ed / -ing."""
    if w.b[w.k] == "s":
        if w.ends("sses"):
            w.k -= 2
        elif w.ends("ies"):
            w.setto("i")
        elif w.b[w.k - 1] != "s":
            w.k -= 1
    if w.ends("eed"):
        if w.m() > 0:
            w.k -= 1
    elif (w.ends("ed") or w.ends("ing")) and w.vowel_in_stem():
        w.k = w.j
        if w.ends("at"):
            w.setto("ate")
        elif w.ends("bl"):
            w.setto("ble")
        elif w.ends("iz"):
            w.setto("ize")
        elif w.doublec(w.k):
            ch = w.b[w.k]
            w.k -= 1
            if ch in ("l", "s", "z"):
                w.k += 1
        elif w.m() == 1 and w.cvc(w.k):
            w.setto("e")


def _step2(w: _Word) -> None:
    """Final y -> i when the stem has another vowel."""
    if w.ends("y") and w.vowel_in_stem():
        w.b[w.k] = "i"


def _apply_rules(w: _Word, rules: tuple[tuple[str, str], ...] | None) -> None:
    if not rules:
        return
    for suffix, replacement in rules:
        if w.ends(suffix):
            w.r(replacement)
            return


def _step3(w: _Word) -> None:
    """Double suffixes to single ones (-ization -> -ize, ...)."""
    if w.k == 0:
        return
    _apply_rules(w, _STEP3_RULES.get(w.b[w.k - 1]))


def _step4(w: _Word) -> None:
    """-ic-, -full, -ness etc."""
    _apply_rules(w, _STEP4_RULES.get(w.b[w.k]))


def _step5(w: _Word) -> None:
    """-ant, -ence etc. in context <c>vcvc<v>."""
    if w.k == 0:
        return
    suffixes = _STEP5_SUFFIXES.get(w.b[w.k - 1])
    if suffixes is None:
        return
    for suffix in suffixes:
        if not w.ends(suffix):
            continue
        if suffix == "ion" and not (w.j >= 0 and w.b[w.j] in ("s", "t")):
            continue
        if w.m() > 1:
            w.k = w.j
        return


def _step6(w: _Word) -> None:
    """Remove a final -e, and -ll -> -l, when m() > 1."""
    w.j = w.k
    if w.b[w.k] == "e":
        a = w.m()
        if a > 1 or (a == 1 and not w.cvc(w.k - 1)):
            w.k -= 1
    if w.b[w.k] == "l" and w.doublec(w.k) and w.m() > 1:
        w.k -= 1


def porter_stem(word: str) -> str:
    """Stem one lower-cased word exactly as Lucene's PorterStemmer does.

    Args:
        word: a lower-cased token.

    Returns:
        The stem; words of length <= 2, and words whose last character is not an ASCII
        letter (no rule can match them), are returned unchanged.
    """
    if len(word) <= 2:
        return word
    last = word[-1]
    if not ("a" <= last <= "z"):
        return word
    w = _Word(word)
    _step1(w)
    _step2(w)
    _step3(w)
    _step4(w)
    _step5(w)
    _step6(w)
    return w.text()
