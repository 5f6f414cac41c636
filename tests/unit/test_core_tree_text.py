"""encode_tree_text: a scope tree built from its rows' JSON text is encode_tree's, byte for byte, or refused."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.trees import TreeEntry, decode_tree, encode_tree, encode_tree_text

_TYPES = {
    ("", "configmaps"): ("v1", "ConfigMap"),
    ("", "secrets"): ("v1", "Secret"),
    ("apps", "deployments"): ("v1", "Deployment"),
    ("example.com", "widgets"): ("v1beta1", "Widget"),
}

# Names as a cluster holds them, and the characters that sort before a name's closing quote or are escaped.
_names = st.one_of(
    st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,12}[a-z0-9])?", fullmatch=True),
    st.text(alphabet=st.sampled_from('ab-.: !"\\\x01é\U0001f600'), min_size=1, max_size=5),
)
_entries = st.lists(
    st.tuples(
        st.sampled_from(sorted(_TYPES)),
        _names,
        st.sampled_from(["ab" * 32, "cd" * 32]),
        st.sampled_from([9, 10, 1100]),
        st.sampled_from(["uid-1", "uid-2"]),
        st.sampled_from(["1", "10", "2 "]),
    ),
    min_size=1,
    max_size=12,
)


def _as_text(entries: list[TreeEntry]) -> list[tuple[str, str, str, str, list[str]]]:
    by_type: dict[tuple[str, str, str, str], list[str]] = {}
    for e in entries:
        row = orjson.dumps((e.name, e.blob, e.size, e.uid, e.resource_version)).decode()
        by_type.setdefault((e.group, e.version, e.kind, e.resource), []).append(row)
    return [(*key, rows) for key, rows in by_type.items()]


def _tree_entries(drawn: list[tuple]) -> list[TreeEntry]:
    out = []
    for (group, resource), name, blob, size, uid, rv in drawn:
        version, kind = _TYPES[(group, resource)]
        out.append(TreeEntry(group, resource, name, version, kind, blob, size, uid, rv))
    return out


@settings(max_examples=400, deadline=None)
@given(_entries)
def test_the_text_tree_is_encode_trees_or_none(drawn):
    entries = _tree_entries(drawn)
    built = encode_tree_text(_as_text(entries))
    if built is not None:
        assert built == encode_tree(entries)


def test_ordinary_names_take_the_text_path_and_read_back():
    entries = [
        TreeEntry("", "configmaps", name, "v1", "ConfigMap", "ab" * 32, size, f"u-{name}", "7")
        for name, size in (("web", 1100), ("web-1", 9), ("a.b", 10), ("we", 12))
    ]
    entries.append(TreeEntry("apps", "deployments", "web", "v1", "Deployment", "cd" * 32, 30, "u-d", "8"))
    built = encode_tree_text(_as_text(entries))
    assert built is not None and built == encode_tree(entries)
    assert [e.name for e in decode_tree(built[1])] == ["a.b", "we", "web", "web-1", "web"]


def test_a_name_twice_or_a_character_out_of_order_is_refused():
    twice = [
        TreeEntry("", "configmaps", "web", "v1", "ConfigMap", "ab" * 32, size, uid, "1")
        for size, uid in ((1100, "u-1"), (999, "u-2"))
    ]
    assert encode_tree_text(_as_text(twice)) is None
    for name in ("a b", "a!", 'a"b', "a\\b", "a\x01"):
        odd = [TreeEntry("", "configmaps", n, "v1", "ConfigMap", "ab" * 32, 1, "u-" + n, "1") for n in (name, "a")]
        assert encode_tree_text(_as_text(odd)) is None, name


def test_a_name_that_is_not_a_string_is_refused():
    rows = [orjson.dumps((name, "ab" * 32, 1, f"u-{i}", "1")).decode() for i, name in enumerate(["a", None, 7])]
    assert encode_tree_text([("", "v1", "ConfigMap", "configmaps", rows)]) is None
    assert encode_tree_text([("", "v1", "ConfigMap", "configmaps", rows[:1])]) is not None


def test_two_types_of_one_group_and_resource_are_refused():
    rows = [orjson.dumps(("a", "ab" * 32, 1, "u", "1")).decode()]
    types = [("", "v1", "ConfigMap", "configmaps", rows), ("", "v2", "Other", "configmaps", rows)]
    assert encode_tree_text(types) is None
