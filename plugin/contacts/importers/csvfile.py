"""Read contact CSV files: Google, Outlook, Thunderbird, LinkedIn and khard layouts.

The header row decides what each column means (``csv_columns``); it need not
be the first line (LinkedIn puts a "Notes:" preamble above it) and the
delimiter is whatever the header uses (comma, semicolon or tab; Thunderbird
even mixes them row by row). Files without a header are read by content:
the column of addresses with ``@`` is the email, digits are phones, and the
first text column the name. A row that cannot be read is reported with its
line number and the other rows still import.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from cardfile.plugin.contacts.importers import csv_columns
from cardfile.plugin.contacts.importers.build import Record, build
from cardfile.plugin.contacts.importers.csv_rows import fill_record
from cardfile.plugin.contacts.importers.model import CSV_FORMATS, Parsed, Problem, SourceCard

__all__ = ["CSV_FORMATS", "read_csv"]
_DELIMITERS = (",", ";", "\t")
_PHONE = re.compile(r"^[+(]?[\d\s().\-/]{5,}$")
csv.field_size_limit(16 * 1024 * 1024)


def find_header(text: str) -> tuple[int, str, list[str]] | None:
    """(line index, delimiter, fields) of the header row among the first lines."""
    for index, line in enumerate(text.splitlines()[:40]):
        best: tuple[int, str, list[str]] | None = None
        for delimiter in _DELIMITERS:
            fields = next(csv.reader([line], delimiter=delimiter), [])
            if any("@" in f for f in fields):
                break
            known = sum(1 for f in fields if f.strip() and csv_columns.norm(f)
                        in csv_columns.FIXED or _numbered(f))
            if known >= 2 and (best is None or known > best[0]):
                best = (known, delimiter, fields)
        if best is not None:
            return index, best[1], best[2]
    return None


def _numbered(header: str) -> bool:
    column = csv_columns.classify(header)
    return column is not None and column.slot[-1:].isdigit()


def detect_layout(headers: list[str]) -> str:
    keys = {csv_columns.norm(h) for h in headers}
    if "connected on" in keys:
        return "linkedin-csv"
    if "formatted name" in keys and "kind" in keys:
        return "khard-csv"
    if keys & {"labels", "group membership", "given name", "e mail 1 value", "phone 1 value",
               "organization 1 name", "organization name"}:
        return "google-csv"
    if keys & {"primary email", "display name", "mobile number", "birth year"}:
        return "thunderbird-csv"
    return "outlook-csv"


def read_csv(text: str, name: str, fmt: str = "auto") -> Parsed:
    text = text.lstrip("\ufeff")
    header = find_header(text)
    if header is None:
        return _read_headerless(text, name)
    index, delimiter, headers = header
    layout = detect_layout(headers) if fmt in ("auto", "csv") else fmt
    parsed = Parsed(layout)
    columns = [_column(h, layout) for h in headers]
    offset = index + 1  # physical lines before the first data row
    start_of_body = _nth_line_offset(text, index + 1)
    for line_no, row, error in _rows(text[start_of_body:], delimiter):
        origin = f"{name}:{line_no + offset}"
        if error:
            parsed.problems.append(Problem(origin, f"cannot read this row ({error}); "
                                           "skipped. Fix its quoting and import again"))
            continue
        if not any(v.strip() for v in row):
            continue
        if len(row) > len(headers) and any(v.strip() for v in row[len(headers):]):
            parsed.problems.append(Problem(origin, f"row has {len(row)} fields but the header "
                                           f"has {len(headers)}; the extra fields were ignored",
                                           skipped=False))
        record = Record()
        fill_record(record, list(zip(headers, columns, row, strict=False)))
        if record.is_empty():
            parsed.problems.append(Problem(origin, "row has no name, email, phone or "
                                           "organisation; skipped"))
            continue
        parsed.cards.append(SourceCard(build(record, layout), origin))
    return parsed


def _column(header: str, layout: str) -> csv_columns.Column | None:
    key = csv_columns.norm(header)
    if layout == "khard-csv" and key == "title":
        return csv_columns.Column("job")
    return csv_columns.classify(header)


def _nth_line_offset(text: str, n: int) -> int:
    offset = 0
    for _ in range(n):
        newline = re.compile(r"\r\n|\n|\r").search(text, offset)
        if newline is None:
            return len(text)
        offset = newline.end()
    return offset


def _rows(body: str, delimiter: str) -> Iterator[tuple[int, list[str], str]]:
    """(first physical line, fields, error) of every row; bad rows carry an error."""
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter, strict=True)
    line = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, [], str(e)
            if reader.line_num == line:
                return
            line = reader.line_num
            continue
        line = reader.line_num
        if len(row) == 1:
            for other in _DELIMITERS:
                if other != delimiter and other in row[0]:
                    row = next(csv.reader([row[0]], delimiter=other))
                    break
        yield start, row, ""


def _read_headerless(text: str, name: str) -> Parsed:
    """A CSV without a header: columns are recognised by what they hold."""
    parsed = Parsed("csv")
    delimiter = max(_DELIMITERS, key=lambda d: text.split("\n", 1)[0].count(d))
    rows = [(n, r) for n, r, err in _rows(text, delimiter) if not err and any(r)]
    width = max((len(r) for _, r in rows), default=0)
    kinds = [_column_kind([r[i] for _, r in rows if i < len(r) and r[i].strip()])
             for i in range(width)]
    if "email" not in kinds and "tel" not in kinds:
        return parsed  # no header and no email or phone column: not a contacts table
    for line_no, row in rows:
        record = Record()
        texts: list[str] = []
        for kind, value in zip(kinds, row, strict=False):
            value = value.strip()
            if not value:
                continue
            if kind == "email":
                record.emails.append(([], value))
            elif kind == "tel":
                record.phones.append(([], value))
            else:
                texts.append(value)
        if texts:
            record.fn = texts.pop(0)
            if len(texts) >= 2 and f"{texts[0]} {texts[1]}" == record.fn:
                record.given, record.family = texts.pop(0), texts.pop(0)
            elif len(texts) >= 2 and f"{texts[1]} {texts[0]}" == record.fn:
                record.family, record.given = texts.pop(0), texts.pop(0)
            record.notes.extend(texts)
        origin = f"{name}:{line_no}"
        if record.is_empty():
            parsed.problems.append(Problem(origin, "row has no name, email or phone; skipped"))
            continue
        parsed.cards.append(SourceCard(build(record, "csv"), origin))
    return parsed


def _column_kind(values: list[str]) -> str:
    if not values:
        return "text"
    if sum("@" in v for v in values) * 2 > len(values):
        return "email"
    if sum(bool(_PHONE.match(v.strip())) for v in values) * 2 > len(values):
        return "tel"
    return "text"
