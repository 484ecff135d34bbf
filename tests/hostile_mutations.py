"""Mutations of a valid spec or study into hostile ones, shared by the
hypothesis tests (``test_hostile_hypothesis.py``).

A mutation is (kind, path, value): set the field at `path` to `value`, delete
it, or add an unknown key under it. :func:`names_field` says whether an error
message names the mutated field.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from hypothesis import strategies as st

INJECTIONS = [
    "x\n.control\nshell rm -rf ~\n.endc",
    ".include /etc/passwd",
    "lagline\n.include /etc/passwd",
    "tanh\r\n.end",
    "shell id",
    "__import__('os').system('id')",
    "exec('import os')",
    "softplus; __import__('os')",
    "../../../../etc/passwd",
    "${HOME}",
    "{{7*7}}",
    "a\x00b",
    "\x1b[2J\x1b[31m",
    "lägline",
    "\u202etanh",
    "\U0001f4a5",
    "",
    " ",
    "a" * 5000,
]

BAD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    0.0,
    -0.0,
    -1e-300,
    1e-320,
    1e308,
    -1e308,
    math.nan,
    math.inf,
    -math.inf,
    10**30,
    -(10**30),
    2**63,
    "1.0",
    "nan",
    "inf",
    [],
    [[]],
    [1.0, "x"],
    [math.nan],
    {},
    {"kind": "sines"},
    {"init": "random", "std": math.inf},
    [0.5] * 1000,
    *INJECTIONS,
]


def _children(data: Any) -> list[tuple]:
    """(key or index, child) of a mapping or a list; nothing for a scalar."""
    if isinstance(data, dict):
        return list(data.items())
    if isinstance(data, list):
        return list(enumerate(data))
    return []


def paths_of(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (mapping key or list index) inside `data`, parents first."""
    found = []
    for key, child in _children(data):
        path = (*prefix, key)
        found.append(path)
        found += paths_of(child, path)
    return found


def mappings_of(data: Any, prefix: tuple = ()) -> list[tuple]:
    """The path of every mapping inside `data`, the top level included."""
    found = [prefix] if isinstance(data, dict) else []
    for key, child in _children(data):
        found += mappings_of(child, (*prefix, key))
    return found


def apply(data: Any, kind: str, path: tuple, value: Any) -> Any:
    """A mutated deep copy of `data`."""
    data = copy.deepcopy(data)
    if kind == "add":
        node = data
        for part in path:
            node = node[part]
        node[value[0]] = value[1]
        return data
    node = data
    for part in path[:-1]:
        node = node[part]
    if kind == "delete":
        del node[path[-1]]
    else:
        node[path[-1]] = copy.deepcopy(value)
    return data


def path_text(path: tuple) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def names_field(message: str, kind: str, path: tuple, value: Any) -> bool:
    """Whether `message` names the field that was mutated.

    The full dotted path, or the last named key on it (as written, or as
    Python's repr shows it), must appear. An added key must be named itself.
    """
    if kind == "add":
        keys = [value[0]]
    else:
        keys = [part for part in path if isinstance(part, str)][-1:]
        keys.append(path_text(path))
        # a cross-field check may name the list the item sits in, and a
        # deleted field may leave its parent incomplete
        if path and (isinstance(path[-1], int) or kind == "delete"):
            keys.append(path_text(path[:-1]))
        keys = [key for key in keys if key != ""]
    for key in keys:
        text = str(key)
        escaped = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
        if text.strip() and any(form in message for form in (text, escaped)):
            return True
        if repr(text)[1:-1] and repr(text)[1:-1] in message:
            return True
        if not text.strip() and repr(text) in message:
            return True
    return False


def mutation(data: dict, keys: list[str] | None = None) -> st.SearchStrategy:
    """(kind, path, value) for `data`: a replaced, deleted or added field.

    `keys`: extra field names to add (unknown fields, hostile names).
    """
    paths = paths_of(data)
    maps = mappings_of(data)
    new_keys = st.sampled_from(
        (keys or [])
        + ["colour", "tau", "recurrent", "feedback", "__class__", *INJECTIONS[:14]]
    )
    replace = st.tuples(
        st.just("replace"),
        st.sampled_from(paths),
        st.one_of(
            st.sampled_from(BAD_VALUES),
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(min_value=-(2**70), max_value=2**70),
            st.text(max_size=20),
        ),
    )
    delete = st.tuples(st.just("delete"), st.sampled_from(paths), st.none())
    add = st.tuples(
        st.just("add"),
        st.sampled_from(maps),
        st.tuples(new_keys, st.sampled_from(BAD_VALUES[:20])),
    )
    return st.one_of(replace, delete, add)


def toml_text(data: dict) -> str | None:
    """`data` as TOML (every value inline), or None if TOML cannot hold it."""

    def value(item: Any) -> str:
        if item is None:
            raise ValueError("TOML has no null")
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int):
            return str(item)
        if isinstance(item, float):
            if math.isnan(item):
                return "nan"
            if math.isinf(item):
                return "inf" if item > 0 else "-inf"
            return repr(item)
        if isinstance(item, str):
            return _toml_string(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(x) for x in item) + "]"
        if isinstance(item, dict):
            return (
                "{" + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items()) + "}"
            )
        raise ValueError(type(item))

    def key(name: Any) -> str:
        if not isinstance(name, str):
            raise ValueError("TOML keys are text")
        return _toml_string(name)

    try:
        return "".join(f"{key(k)} = {value(v)}\n" for k, v in data.items())
    except ValueError:
        return None


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes, and DEL escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
