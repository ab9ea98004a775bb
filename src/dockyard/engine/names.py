"""Container IDs and generated names (pure apart from the random source).

docker names unnamed containers `adjective_surname`; the word lists here are our own.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

ADJECTIVES = (
    "agile amazing bold brave bright busy calm careful cheerful clever cool curious daring "
    "eager elated epic fervent festive fond friendly gallant gentle happy hardy hopeful "
    "humble jolly keen kind lively loving lucid magical merry mellow modest nifty nimble "
    "noble patient peaceful placid plucky polite proud quick quiet radiant relaxed sharp "
    "serene sleepy smart snappy solid steady sunny swift tender trusting upbeat vibrant "
    "vigilant warm witty wizardly zealous"
).split()

SURNAMES = (
    "agnesi archimedes babbage banach bardeen bell bohr boole borg brattain cantor carson "
    "cerf chandrasekhar curie darwin descartes dijkstra einstein euclid euler faraday fermat "
    "fermi feynman franklin galileo gauss germain goldberg goodall hamilton hawking heisenberg "
    "hertz hodgkin hopper hypatia joliot kepler knuth kowalevski lamarr leakey lovelace "
    "maxwell meitner mendel mirzakhani newton noether pascal pasteur planck ptolemy ramanujan "
    "ritchie shannon sinoussi tesla thompson torvalds turing volta wilson wozniak yalow"
).split()

_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def new_id() -> str:
    """64 random hex digits, never all digits (docker avoids IDs that parse as numbers)."""
    while True:
        value = secrets.token_hex(32)
        if not value[:12].isdigit():
            return value


def generate_name(
    taken: Callable[[str], bool], rng: Callable[[int], int] = secrets.randbelow
) -> str:
    """A free `adjective_surname`; after a few collisions a digit is appended, as docker does."""
    for attempt in range(100):
        name = f"{ADJECTIVES[rng(len(ADJECTIVES))]}_{SURNAMES[rng(len(SURNAMES))]}"
        if attempt >= 10:
            name += str(rng(10))
        if not taken(name):
            return name
    raise RuntimeError("could not generate a free container name")


def valid_name(name: str) -> bool:
    """docker's container name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (an optional leading /)."""
    return bool(_NAME.match(name))
