"""Column alignment with Go's text/tabwriter semantics (docker's fork of it).

docker renders every table by executing a template per row into a tabwriter
(minwidth 10, tabwidth 1, padding 3, padchar ' '). Reproducing the elastic
tabstop algorithm, rather than a simpler "pad every column to its max",
matters for output that differs: columns are computed per *block* of
consecutive lines that have the cell, the last cell of a line is never
padded, and empty tab-terminated cells are. docker's fork measures cells in
terminal columns (East Asian wide characters count 2), as done here.

Only the flags docker uses are honoured (AlignRight and Debug are supported
for completeness; HTML filtering and escapes are not).
"""

__all__ = ["ALIGN_RIGHT", "DEBUG", "NewWriter", "Writer", "display_width", "tabulate"]

ALIGN_RIGHT = 4  # Go's tabwriter.AlignRight
DEBUG = 32  # Go's tabwriter.Debug: print '|' between columns


def display_width(text: str) -> int:
    """Cell width in terminal columns, like go-runewidth's StringWidth (approximately).

    ASCII is the common case and needs no table; unicodedata (a C extension,
    not loaded at start-up) is consulted only for other text.
    """
    if text.isascii():
        return len(text)
    import unicodedata  # lazy on purpose, see docstring

    width = 0
    for ch in text:
        if ch.isascii():
            width += 1
        elif unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue  # zero-width marks and format characters
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            width += 2
        else:
            width += 1
    return width


class Writer:
    """Buffers text and aligns tab-terminated cells on flush(), like tabwriter.Writer."""

    __slots__ = ("_buf", "_flags", "_minwidth", "_out", "_padchar", "_padding", "_tabwidth")

    def __init__(
        self,
        out: object = None,
        minwidth: int = 10,
        tabwidth: int = 1,
        padding: int = 3,
        padchar: str = " ",
        flags: int = 0,
    ) -> None:
        if minwidth < 0 or tabwidth < 0 or padding < 0:
            raise ValueError("negative minwidth, tabwidth, or padding")
        self._out = out  # anything with .write(str); None means "collect only"
        self._minwidth = minwidth
        self._tabwidth = tabwidth
        self._padding = padding
        self._padchar = padchar
        if padchar == "\t":
            flags &= ~ALIGN_RIGHT  # tab padding enforces left alignment
        self._flags = flags
        self._buf: list[str] = []

    def write(self, text: str) -> int:
        self._buf.append(text)
        return len(text)

    def flush(self) -> str:
        """Format everything written so far; write it to ``out`` and return it."""
        text = "".join(self._buf)
        self._buf.clear()
        result = self._format_text(text)
        if self._out is not None:
            self._out.write(result)  # type: ignore[attr-defined]
        return result

    # -- the algorithm ---------------------------------------------------------

    def _format_text(self, text: str) -> str:
        # '\f' ends a line *and* every column (Go flushes); each section is
        # formatted on its own. '\v' terminates a cell like '\t'.
        if "\v" in text:
            text = text.replace("\v", "\t")
        sections = text.split("\f")
        last = len(sections) - 1
        sep = "\n---\n" if self._flags & DEBUG else "\n"  # Debug marks each flush with "---"
        return sep.join(self._format_section(s, i == last) for i, s in enumerate(sections))

    def _format_section(self, text: str, at_end: bool) -> str:
        # Each line is a list of cells; the last cell is the text after the last
        # tab, which never belongs to a column. At the very end Go only keeps a
        # non-empty unterminated cell, so "a\t" at EOF has a single cell and a
        # trailing newline leaves an empty final line that prints as nothing.
        lines = [line.split("\t") for line in text.split("\n")]
        if at_end and lines[-1][-1] == "":
            lines[-1].pop()
        widths_of = [[display_width(c) for c in cells] for cells in lines]
        out: list[str] = []
        self._format(lines, widths_of, out, [], 0, len(lines))
        return "".join(out)

    def _format(
        self,
        lines: list[list[str]],
        widths_of: list[list[int]],
        out: list[str],
        widths: list[int],
        line0: int,
        line1: int,
    ) -> None:
        """Go's Writer.format: find column blocks recursively, left to right."""
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # A cell exists in this column: print the lines before the block,
            # then measure the block of consecutive lines having this column.
            self._write_lines(lines, widths_of, out, widths, line0, this)
            line0 = this
            width = self._minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, widths_of[this][column] + self._padding)
                this += 1
            widths.append(width)
            self._format(lines, widths_of, out, widths, line0, this)
            widths.pop()
            line0 = this
        self._write_lines(lines, widths_of, out, widths, line0, line1)

    def _write_lines(
        self,
        lines: list[list[str]],
        widths_of: list[list[int]],
        out: list[str],
        widths: list[int],
        line0: int,
        line1: int,
    ) -> None:
        pad = self._padchar
        align_right = self._flags & ALIGN_RIGHT
        debug = self._flags & DEBUG
        for i in range(line0, line1):
            cells = lines[i]
            for j, cell in enumerate(cells):
                if j and debug:
                    out.append("|")
                fill = ""
                if j < len(widths):
                    n = widths[j] - widths_of[i][j]
                    tw = self._tabwidth
                    if pad != "\t":
                        fill = pad * n
                    elif tw:  # Go pads with whole tabs, the cell rounded up to tabwidth
                        n = (widths[j] + tw - 1) // tw * tw - widths_of[i][j]
                        fill = "\t" * ((n + tw - 1) // tw)
                if align_right and cell:
                    out.append(fill + cell)
                else:
                    out.append(cell + fill)
            if i + 1 < len(lines):
                out.append("\n")


def NewWriter(  # Go's name, so code ported from docker reads the same
    out: object = None,
    minwidth: int = 10,
    tabwidth: int = 1,
    padding: int = 3,
    padchar: str = " ",
    flags: int = 0,
) -> Writer:
    """tabwriter.NewWriter; call ``.write(text)`` then ``.flush()``."""
    return Writer(out, minwidth, tabwidth, padding, padchar, flags)


def tabulate(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-terminated cells of ``text`` as docker's table output does."""
    w = Writer(None, minwidth, 1, padding)
    w.write(text)
    return w.flush()
