"""The lab's JSON documents checked against docs/json-schema.json, for every test that reads one."""

import json
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "json-schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
Draft202012Validator.check_schema(SCHEMA)
# The whole file: any one of the documents, told apart by their `schema` (or by being a list).
ANY_DOCUMENT = Draft202012Validator(SCHEMA)


def valid(document, *, kind: str):
    """``document`` itself, once it passes the schema of ``kind`` (an entry of the file's $defs:
    splatter-trials, splatter-scenario, account-audits, account-audit, scenario-audit); else
    jsonschema's ValidationError, naming the field."""
    Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{kind}"}).validate(document)
    if kind != "account-audit":  # the one kind that is a part (of account-audits), not a document
        ANY_DOCUMENT.validate(document)
    return document
