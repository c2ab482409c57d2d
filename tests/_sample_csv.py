"""Contact exports built from the exporters' documented column headers (no real people).

Google Contacts writes two layouts (the current one with ``Labels`` and
``E-mail 1 - Label``, the older one with ``Group Membership`` and
``E-mail 1 - Type``); Outlook writes its desktop layout, localised, often in
cp1252. Each builder returns the bytes such an export has.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import PASSWORD, USER, run_cli

GOOGLE_NEW_HEADER = [
    "First Name", "Middle Name", "Last Name", "Phonetic First Name", "Phonetic Middle Name",
    "Phonetic Last Name", "Name Prefix", "Name Suffix", "Nickname", "File As",
    "Organization Name", "Organization Title", "Organization Department", "Birthday", "Notes",
    "Photo", "Labels", "E-mail 1 - Label", "E-mail 1 - Value", "E-mail 2 - Label",
    "E-mail 2 - Value", "Phone 1 - Label", "Phone 1 - Value", "Phone 2 - Label",
    "Phone 2 - Value", "Address 1 - Label", "Address 1 - Formatted", "Address 1 - Street",
    "Address 1 - City", "Address 1 - PO Box", "Address 1 - Region", "Address 1 - Postal Code",
    "Address 1 - Country", "Address 1 - Extended Address", "Website 1 - Label",
    "Website 1 - Value", "Event 1 - Label", "Event 1 - Value"]

GOOGLE_OLD_HEADER = [
    "Name", "Given Name", "Additional Name", "Family Name", "Yomi Name", "Given Name Yomi",
    "Additional Name Yomi", "Family Name Yomi", "Name Prefix", "Name Suffix", "Initials",
    "Nickname", "Short Name", "Maiden Name", "Birthday", "Gender", "Location",
    "Billing Information", "Directory Server", "Mileage", "Occupation", "Hobby", "Sensitivity",
    "Priority", "Subject", "Notes", "Language", "Photo", "Group Membership", "E-mail 1 - Type",
    "E-mail 1 - Value", "Phone 1 - Type", "Phone 1 - Value", "Phone 2 - Type",
    "Phone 2 - Value", "Address 1 - Type", "Address 1 - Formatted", "Address 1 - Street",
    "Address 1 - City", "Address 1 - PO Box", "Address 1 - Region", "Address 1 - Postal Code",
    "Address 1 - Country", "Address 1 - Extended Address", "Organization 1 - Type",
    "Organization 1 - Name", "Organization 1 - Yomi Name", "Organization 1 - Title",
    "Organization 1 - Department"]

OUTLOOK_HEADER = [
    "Title", "First Name", "Middle Name", "Last Name", "Suffix", "Company", "Department",
    "Job Title", "Business Street", "Business Street 2", "Business Street 3", "Business City",
    "Business State", "Business Postal Code", "Business Country/Region", "Home Street",
    "Home Street 2", "Home Street 3", "Home City", "Home State", "Home Postal Code",
    "Home Country/Region", "Other Street", "Other City", "Other State", "Other Postal Code",
    "Other Country/Region", "Assistant's Phone", "Business Fax", "Business Phone",
    "Business Phone 2", "Callback", "Car Phone", "Company Main Phone", "Home Fax", "Home Phone",
    "Home Phone 2", "ISDN", "Mobile Phone", "Other Fax", "Other Phone", "Pager",
    "Primary Phone", "Radio Phone", "TTY/TDD Phone", "Telex", "Account", "Anniversary",
    "Assistant's Name", "Billing Information", "Birthday", "Business Address PO Box",
    "Categories", "Children", "Directory Server", "E-mail Address", "E-mail Type",
    "E-mail Display Name", "E-mail 2 Address", "E-mail 2 Type", "E-mail 2 Display Name",
    "E-mail 3 Address", "E-mail 3 Type", "E-mail 3 Display Name", "Gender",
    "Government ID Number", "Hobby", "Home Address PO Box", "Initials", "Internet Free Busy",
    "Keywords", "Language", "Location", "Manager's Name", "Mileage", "Notes",
    "Office Location", "Organizational ID Number", "Other Address PO Box", "Priority",
    "Private", "Profession", "Referred By", "Sensitivity", "Spouse", "User 1", "User 2",
    "User 3", "User 4", "Web Page"]

#: Outlook's German headers for the columns the German sample fills.
OUTLOOK_GERMAN = {"First Name": "Vorname", "Last Name": "Nachname", "Company": "Firma",
                  "Job Title": "Position", "Business Street": "Straße geschäftlich",
                  "Business City": "Ort geschäftlich",
                  "Business Postal Code": "Postleitzahl geschäftlich",
                  "Business Country/Region": "Land/Region geschäftlich",
                  "Business Phone": "Telefon geschäftlich", "Mobile Phone": "Mobiltelefon",
                  "E-mail Address": "E-Mail-Adresse", "Birthday": "Geburtstag",
                  "Categories": "Kategorien", "Notes": "Notizen"}


def table(header: list[str], rows: list[dict[str, str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, header, delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in header})
    return out.getvalue()


def google_new(rows: list[dict[str, str]]) -> bytes:
    return table(GOOGLE_NEW_HEADER, rows).encode("utf-8")


def google_old(rows: list[dict[str, str]]) -> bytes:
    return table(GOOGLE_OLD_HEADER, rows).encode("utf-16")


def outlook(rows: list[dict[str, str]], german: bool = False) -> bytes:
    header = [OUTLOOK_GERMAN.get(h, h) for h in OUTLOOK_HEADER] if german else OUTLOOK_HEADER
    keyed = [{OUTLOOK_GERMAN.get(k, k) if german else k: v for k, v in r.items()} for r in rows]
    defaults = {"Priority": "Normal", "Sensitivity": "Normal", "Private": "False",
                "Gender": "Unspecified", "Anniversary": "0/0/00"}
    full = [defaults | r for r in keyed]
    delimiter = ";" if german else ","
    return table(header, full, delimiter).encode("cp1252")


# -- running the CLI on a data folder -------------------------------------------------
def new_data_dir(tmp_path: Path, name: str = "data") -> Path:
    data = tmp_path / name
    data.mkdir()
    run_cli("user", "add", USER, "--password-stdin", data_dir=data, stdin=PASSWORD + "\n")
    return data


def import_json(data: Path, *args: str) -> dict[str, Any]:
    result = run_cli("import", *args, "--json", data_dir=data)
    return dict(json.loads(result.stdout))


def listing(data: Path, *args: str) -> list[dict[str, Any]]:
    result = run_cli("contacts", "list", "--json", *args, data_dir=data)
    return list(json.loads(result.stdout))


def cli_json(data: Path, *args: str) -> Any:
    result: subprocess.CompletedProcess[str] = run_cli(*args, data_dir=data)
    return json.loads(result.stdout)
