"""Reading admin pages as a user reads them: the text of a table's rows and cells."""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self, table_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.table_id = table_id
        self.depth = 0  # nesting of tables inside the wanted one (0: outside it)
        self.in_body = False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and (self.depth or dict(attrs).get("id") == self.table_id):
            self.depth += 1
        elif self.depth == 1 and tag == "tbody":
            self.in_body = True
        elif self.depth == 1 and self.in_body and tag == "tr":
            self.rows.append([])
        elif self.depth == 1 and self.in_body and tag in ("td", "th"):
            self.cell = []
        elif self.cell is not None and tag in ("li", "br", "div", "tr"):
            self.cell.append(" | ")

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth == 1 and tag == "tbody":
            self.in_body = False
        elif self.depth == 1 and tag in ("td", "th") and self.cell is not None:
            text = " ".join("".join(self.cell).split())
            self.rows[-1].append(text.strip(" |").replace(" | | ", " | "))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """The body rows of the table ``table_id``, each a list of its cells' whitespace-normalized text
    (list items and line breaks inside a cell become " | ")."""
    parser = _Tables(table_id)
    parser.feed(html)
    return parser.rows
