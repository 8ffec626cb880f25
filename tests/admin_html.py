"""Reading admin pages as a user reads them: the text of a table's rows and cells."""

from __future__ import annotations

from html.parser import HTMLParser


class _FirstTable(HTMLParser):
    """The header and body rows of the first table in the markup fed (tables nested in it are read as
    text of their cell)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.done = False
        self.section = "tbody"
        self.rows: dict[str, list[list[str]]] = {"thead": [], "tbody": []}
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if self.done:
            return
        if tag == "table":
            self.depth += 1
        elif self.depth == 1 and tag in ("thead", "tbody"):
            self.section = tag
        elif self.depth == 1 and tag == "tr":
            self.rows[self.section].append([])
        elif self.depth == 1 and tag in ("td", "th") and self.rows[self.section]:
            self.cell = []
        elif self.cell is not None and tag in ("li", "br", "div", "tr"):
            self.cell.append("\n")

    def handle_endtag(self, tag):
        if self.done:
            return
        if tag == "table" and self.depth:
            self.depth -= 1
            self.done = self.depth == 0
        elif self.depth == 1 and tag == "thead":
            self.section = "tbody"
        elif self.depth == 1 and tag in ("td", "th") and self.cell is not None:
            lines = (" ".join(line.split()) for line in "".join(self.cell).split("\n"))
            self.rows[self.section][-1].append(" | ".join(line for line in lines if line))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _first_table(html: str, element_id: str) -> _FirstTable:
    marker = html.index(f'id="{element_id}"')
    parser = _FirstTable()
    parser.feed(html[html.rindex("<", 0, marker) :])
    return parser


def table_rows(html: str, element_id: str) -> list[list[str]]:
    """The body rows of the table with id ``element_id``, or of the first table inside the element with that
    id; each row a list of its cells' whitespace-normalized text (list items and line breaks inside a cell
    joined with " | ")."""
    return _first_table(html, element_id).rows["tbody"]


def table_header(html: str, element_id: str) -> list[str]:
    """The column headings of the same table."""
    rows = _first_table(html, element_id).rows["thead"]
    return rows[0] if rows else []
