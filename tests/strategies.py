"""Hypothesis strategies derived from the protocol models' own type information.

``from_model(Report)`` builds valid reports by walking ``msgspec.inspect.type_info``, so a
field added to a model is covered by the property tests without touching this file.
"""

from __future__ import annotations

import msgspec.inspect as mi
from hypothesis import strategies as st

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def from_model(model: type) -> st.SearchStrategy:
    return _strategy(mi.type_info(model))


def _strategy(t: mi.Type) -> st.SearchStrategy:
    if isinstance(t, mi.StructType):
        fields = {f.name: _strategy(f.type) for f in t.fields if f.required}
        optional = {f.name: _strategy(f.type) for f in t.fields if not f.required}
        return st.fixed_dictionaries(fields, optional=optional).map(lambda kw: t.cls(**kw))
    if isinstance(t, mi.UnionType):
        return st.one_of(*[_strategy(x) for x in t.types])
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.IntType):
        return st.integers(
            min_value=t.ge if t.ge is not None else -(2**63),
            max_value=t.le if t.le is not None else 2**63 - 1,
        )
    if isinstance(t, mi.FloatType):
        return st.floats(min_value=t.ge, max_value=t.le, allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.StrType):
        if t.pattern:
            return st.from_regex(t.pattern, fullmatch=True).filter(
                lambda s: (t.max_length is None or len(s) <= t.max_length)
            )
        return st.text(min_size=t.min_length or 0, max_size=min(t.max_length or 40, 40))
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.ListType):
        return st.lists(_strategy(t.item_type), max_size=3)
    if isinstance(t, mi.DictType):
        return st.dictionaries(st.text(max_size=10), _strategy(t.value_type), max_size=3)
    if isinstance(t, mi.AnyType):
        return json_values
    raise NotImplementedError(f"no strategy for {t!r}: extend tests/strategies.py")
