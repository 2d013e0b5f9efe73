"""docs/protocol.md is generated from the models; it must match them exactly."""

from __future__ import annotations

import re
from pathlib import Path

from protocol import MESSAGE_TYPES, decode
from protocol.docs import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def test_protocol_doc_is_current():
    assert DOC.read_text() == render(), (
        "docs/protocol.md is out of date: run `python -m protocol.docs > docs/protocol.md`"
    )


def test_every_example_in_the_doc_decodes():
    text = DOC.read_text()
    sections = re.findall(r"^## (\w+) — `([^`]+)`.*?```json\n(.*?)```", text, re.S | re.M)
    assert sorted(name for name, _, _ in sections) == sorted(t.__name__ for t in MESSAGE_TYPES.values())
    for name, topic, body in sections:
        assert type(decode(topic, body).message).__name__ == name
