"""Sample config files rendered from msgspec Structs and their ``#:`` field comments.

Shared by the agent's and the server's example configs (``python -m agent.sample_config``,
``python -m server.sample_config``): every option is listed with its doc comment and its default,
so an example config cannot drift from the code. No I/O beyond reading the Structs' source.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Any

import msgspec
import msgspec.inspect as mi

_FIELD = re.compile(r"^\s+(\w+)\s*:")


def field_docs(cls: type) -> dict[str, str]:
    """``#:`` comments above each field of a Struct and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, msgspec.Struct)) or klass is msgspec.Struct:
            continue
        pending: list[str] = []
        for line in inspect.getsource(klass).splitlines():
            stripped = line.strip()
            if stripped.startswith("#:"):
                pending.append(stripped[2:].strip())
            elif (m := _FIELD.match(line)) and pending:
                docs[m[1]] = " ".join(pending)
                pending = []
            elif stripped and not stripped.startswith("#"):
                pending = []
    return docs


def toml_value(key: str, value: Any) -> str:
    """``key = value`` on one line (lists inline, so a commented-out default stays one comment)."""
    if isinstance(value, list | tuple):
        inner = ", ".join(msgspec.toml.encode({"v": v}).decode().strip()[4:] for v in value)
        return f"{key} = [{inner}]"
    return msgspec.toml.encode({key: value}).decode().strip()


def doc_lines(text: str) -> list[str]:
    return textwrap.wrap(text, 98, initial_indent="# ", subsequent_indent="# ")


def struct_lines(cls: type, header: str, values: dict[str, Any], *, all_keys: bool = True) -> list[str]:
    docs = field_docs(cls)
    info = mi.type_info(cls)
    lines, subtables = [header], []
    for f in sorted(info.fields, key=lambda f: not f.required):
        nested = f.type.cls if isinstance(f.type, mi.StructType) else None
        items = f.type.item_type.cls if isinstance(f.type, mi.ListType) and isinstance(
            f.type.item_type, mi.StructType) else None
        if nested or items:
            subtables.append((f, nested or items, bool(items)))
            continue
        if f.name in values:
            lines += doc_lines(docs.get(f.name, ""))
            lines.append(toml_value(f.name, values[f.name]))
            continue
        if not all_keys:
            continue
        doc = docs.get(f.name)
        if doc is None:
            raise LookupError(f"{cls.__name__}.{f.name} has no #: doc comment; document it next to the code")
        default = f.default if f.default is not mi.NODEFAULT else (
            f.default_factory() if f.default_factory is not mi.NODEFAULT else None)
        lines += doc_lines(doc)
        lines.append(f"# {f.name} =  (unset)" if default is None else "# " + toml_value(f.name, default))
    base = header.strip("[]")
    for f, sub, is_list in subtables:
        doc = docs.get(f.name, "")
        if is_list:
            examples = values.get(f.name) or [{}]
            for i, item in enumerate(examples):
                lines += ["", *(doc_lines(doc) if i == 0 else [f"# another of {base}.{f.name}"])]
                lines += struct_lines(sub, f"[[{base}.{f.name}]]", item, all_keys=i == 0)
        else:
            lines += ["", *doc_lines(doc), *struct_lines(sub, f"[{base}.{f.name}]", values.get(f.name, {}))]
    return lines
