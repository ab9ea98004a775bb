"""Tests for the Go text/tabwriter port.

GO_CASES are cases of Go's tabwriter_test.go (as kept in docker's fork, which
measures East Asian wide characters as two columns), re-typed in Python.
"""

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.cli.tabwriter import ALIGN_RIGHT, DEBUG, NewWriter, Writer, display_width, tabulate

GO_CASES = [
    # (minwidth, tabwidth, padding, padchar, flags, src, expected)
    (8, 0, 1, ".", 0, "", ""),
    (8, 0, 1, ".", DEBUG, "", ""),
    (8, 0, 1, ".", 0, "\n\n\n", "\n\n\n"),
    (8, 0, 1, ".", 0, "a\nb\nc", "a\nb\nc"),
    (8, 0, 1, ".", 0, "\t", ""),
    (8, 0, 1, ".", ALIGN_RIGHT, "\t", ""),
    (8, 0, 1, ".", 0, "*\t*", "*.......*"),
    (8, 0, 1, ".", 0, "*\t*\n", "*.......*\n"),
    (8, 0, 1, ".", 0, "*\t*\t", "*.......*"),
    (8, 0, 1, ".", DEBUG, "*\t*\t", "*.......|*"),
    (8, 0, 1, ".", ALIGN_RIGHT, "*\t*\t", ".......**"),
    (8, 0, 1, ".", 0, "\t\n", "........\n"),
    (8, 0, 1, ".", 0, "a) foo", "a) foo"),
    (8, 0, 1, " ", 0, "b) foo\tbar", "b) foo  bar"),
    (8, 0, 1, ".", 0, "c) foo\tbar\t", "c) foo..bar"),
    (8, 0, 1, ".", 0, "d) foo\tbar\n", "d) foo..bar\n"),
    (8, 0, 1, ".", 0, "e) foo\tbar\t\n", "e) foo..bar.....\n"),
    (8, 0, 1, "*", 0, "Hello, world!\n", "Hello, world!\n"),
    (1, 0, 0, ".", 0, "1\t2\t3\t4\n11\t222\t3333\t44444\n", "1.2..3...4\n11222333344444\n"),
    (1, 0, 0, ".", 0, "1\t2\t3\t4\f11\t222\t3333\t44444\n", "1234\n11222333344444\n"),
    (
        1,
        0,
        0,
        ".",
        DEBUG,
        "1\t2\t3\t4\f11\t222\t3333\t44444\n",
        "1|2|3|4\n---\n11|222|3333|44444\n",
    ),
    (5, 0, 0, ".", 0, "1\t2\t3\t4\n", "1....2....3....4\n"),
    (5, 0, 0, ".", 0, "1\t2\t3\t4\t\n", "1....2....3....4....\n"),
    (
        8,
        0,
        1,
        ".",
        0,
        "本\tb\tc\naa\t本本本\tcccc\tddddd\naaa\tbbbb\n",
        "本......b.......c\naa......本本本..cccc....ddddd\naaa.....bbbb\n",
    ),
    (
        8,
        0,
        1,
        " ",
        ALIGN_RIGHT,
        "a\tè\tc\t\naa\tèèè\tcccc\tddddd\t\naaa\tèèèè\t\n",
        "       a       è       c\n      aa     èèè    cccc   ddddd\n     aaa    èèèè\n",
    ),
    (2, 0, 0, " ", 0, "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n", "a  b  c\naa bbbcccc\naaabbbb\n"),
    (
        8,
        0,
        1,
        "_",
        0,
        "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n",
        "a_______b_______c\naa______bbb_____cccc\naaa_____bbbb\n",
    ),
    (
        4,
        0,
        1,
        "-",
        0,
        "4444\t日本語\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n"
        "666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
        "4444------日本語-22--1---333\n999999999-22\n7---------22\n------------------88888888\n\n"
        "666666-666666-666666----4444\n1------1------999999999-0000000000\n",
    ),
    (
        4,
        0,
        3,
        ".",
        0,
        "4444\t333\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n"
        "666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
        "4444........333...22...1...333\n999999999...22\n7...........22\n"
        "....................88888888\n\n"
        "666666...666666...666666......4444\n1........1........999999999...0000000000\n",
    ),
    (
        1,
        0,
        2,
        " ",
        ALIGN_RIGHT | DEBUG,
        ".0\t.3\t2.4\t-5.1\t\n23.0\t12345678.9\t2.4\t-989.4\t\n5.1\t12.0\t2.4\t-7.0\t\n"
        ".0\t0.0\t332.0\t8908.0\t\n.0\t-.3\t456.4\t22.1\t\n.0\t1.2\t44.4\t-13.3\t\t",
        "    .0|          .3|    2.4|    -5.1|\n  23.0|  12345678.9|    2.4|  -989.4|\n"
        "   5.1|        12.0|    2.4|    -7.0|\n    .0|         0.0|  332.0|  8908.0|\n"
        "    .0|         -.3|  456.4|    22.1|\n    .0|         1.2|   44.4|   -13.3|",
    ),
    (4, 0, 0, ".", 0, "a\t\tb", "a.......b"),
    (
        100,
        100,
        0,
        "\t",
        0,
        "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
        "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
    ),
]


@pytest.mark.parametrize(
    ("minwidth", "tabwidth", "padding", "padchar", "flags", "src", "expected"), GO_CASES
)
def test_go_cases(minwidth, tabwidth, padding, padchar, flags, src, expected):
    out = io.StringIO()
    w = NewWriter(out, minwidth, tabwidth, padding, padchar, flags)
    # Writes may split anywhere; only flush() formats.
    for i in range(0, len(src), 3):
        w.write(src[i : i + 3])
    assert w.flush() == expected
    assert out.getvalue() == expected


def test_docker_table():
    text = (
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n"
        "127.0.0.1:5000/big\tlatest\t210a61b3fd6a\t4 minutes ago\t212MB\n"
        "busybox\tlatest\tb08c64627ad3\t4 minutes ago\t1.99MB\n"
    )
    assert tabulate(text) == (
        "REPOSITORY           TAG       IMAGE ID       CREATED         SIZE\n"
        "127.0.0.1:5000/big   latest    210a61b3fd6a   4 minutes ago   212MB\n"
        "busybox              latest    b08c64627ad3   4 minutes ago   1.99MB\n"
    )


def test_columns_are_per_block_of_lines():
    # A line without the column ends the block: widths restart below it.
    text = "a\tb\nno tabs here\nlonger cell\tc\n"
    assert tabulate(text) == "a         b\nno tabs here\nlonger cell   c\n"


def test_display_width():
    assert display_width("abc") == 3
    assert display_width("日本") == 4
    assert display_width("e\u0301") == 1  # combining accent has no width
    assert display_width("é") == 1


def test_invalid_arguments():
    with pytest.raises(ValueError):
        Writer(None, -1)


cell = st.text(alphabet=st.characters(blacklist_characters="\t\n\f\v\r"), max_size=12)


@given(st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=8))
def test_cells_start_at_same_column(rows):
    # Every line has the same number of tab-terminated cells, so they form one
    # block: each column starts at the same display position on every line.
    text = "".join("\t".join(r) + "\n" for r in rows)
    out = tabulate(text)
    lines = out.split("\n")[:-1]
    assert len(lines) == len(rows)
    widths = [max(10, max(display_width(r[j]) for r in rows) + 3) for j in range(2)]
    for line, row in zip(lines, rows, strict=True):
        # Cell j starts at display column sum(widths[:j]).
        pos = 0
        for j, text_j in enumerate(row):
            start = sum(widths[:j])
            prefix = line[:pos]
            assert display_width(prefix) == start
            assert line[pos : pos + len(text_j)] == text_j
            pos += len(text_j) + (widths[j] - display_width(text_j) if j < 2 else 0)
        assert pos == len(line)  # the last cell is not padded


@given(st.text(alphabet=st.characters(blacklist_characters="\t\f\v"), max_size=60))
def test_text_without_tabs_is_unchanged(text):
    assert tabulate(text) == text
