"""The bbolt writer: what it writes reads back identically, with valid meta checksums and page structure."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moka_images.trivydb import bbolt

PAGE = bbolt.PAGE_SIZE


def _pages(data: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("<QHHI", data, i * PAGE) for i in range(len(data) // PAGE)]


def test_fnv64a_matches_the_reference_vectors() -> None:
    # Published FNV-1a 64-bit test vectors (the hash bbolt's meta checksum uses).
    assert bbolt.fnv64a(b"") == 0xCBF29CE484222325
    assert bbolt.fnv64a(b"a") == 0xAF63DC4C8601EC8C
    assert bbolt.fnv64a(b"foobar") == 0x85944171F73967E8


def test_small_tree_round_trips_and_meta_pages_are_valid() -> None:
    tree = {b"debian 12": {b"jq": {b"CVE-1": b'{"FixedVersion":"1.7"}'}}, b"vulnerability": {b"CVE-1": b"{}"}}
    data = bbolt.encode(tree)
    assert len(data) % PAGE == 0
    metas = [bbolt.read_meta(data, i) for i in (0, 1)]
    assert [m.txid for m in metas] == [0, 1]
    assert all(m.page_size == PAGE and m.freelist == 2 and m.pgid == len(data) // PAGE for m in metas)
    # The checksum is FNV-64a over the meta fields that precede it, as bbolt computes it.
    meta_fields = data[16:16 + 56]
    assert struct.unpack_from("<Q", data, 16 + 56)[0] == bbolt.fnv64a(meta_fields)
    assert bbolt.check(data) == tree


def test_page_headers_carry_their_own_ids_and_one_type_flag() -> None:
    tree = {b"b": {f"k{i:05d}".encode(): b"v" * 40 for i in range(2000)}}
    data = bbolt.encode(tree)
    pages = _pages(data)
    assert pages[0][:2] == (0, bbolt.META_PAGE) and pages[1][:2] == (1, bbolt.META_PAGE)
    assert pages[2][:2] == (2, bbolt.FREELIST_PAGE)
    flags = {p[1] for p in pages[3:]}
    assert flags == {bbolt.LEAF_PAGE, bbolt.BRANCH_PAGE}
    assert all(p[0] == i for i, p in enumerate(pages) if i >= 3 and p[1] in (bbolt.LEAF_PAGE, bbolt.BRANCH_PAGE))
    assert bbolt.check(data) == tree


def test_deep_trees_and_overflow_values_round_trip() -> None:
    big = {f"CVE-2099-{i:06d}".encode(): b'{"Title":"x"}' * 3 for i in range(40000)}
    tree = {b"vulnerability": big, b"huge": {b"one": b"x" * (3 * PAGE + 17)}, b"empty": {}}
    data = bbolt.encode(tree)
    overflowing = [p for p in _pages(data) if p[1] == bbolt.LEAF_PAGE and p[3] > 0]
    assert overflowing and overflowing[0][3] == 3
    assert bbolt.check(data) == tree


def test_small_buckets_are_inline_and_large_ones_get_pages() -> None:
    small = bbolt.encode({b"a": {b"pkg": {b"k": b"v"}}})
    large = bbolt.encode({b"a": {b"pkg": {f"k{i}".encode(): b"v" * 100 for i in range(20)}}})
    # meta, meta, freelist, the root's leaf, and a's leaf with `pkg` inline in it (a bucket holding buckets
    # is never inline, as in bbolt)
    assert len(small) // PAGE == 5
    assert len(large) // PAGE == 6
    assert bbolt.check(small) == {b"a": {b"pkg": {b"k": b"v"}}}


def test_a_corrupt_meta_page_fails_its_checksum_and_the_other_one_is_used() -> None:
    tree = {b"a": {b"k": b"v"}}
    data = bytearray(bbolt.encode(tree))
    data[PAGE + 16 + 40] ^= 0xFF  # flip a byte of meta page 1's fields (its txid)
    with pytest.raises(bbolt.BoltFormatError, match="checksum"):
        bbolt.read_meta(bytes(data), 1)
    assert bbolt.read(bytes(data)) == tree  # bbolt falls back to meta page 0 the same way
    with pytest.raises(bbolt.BoltFormatError, match="checksum"):
        bbolt.check(bytes(data))


def test_truncated_or_unordered_data_is_rejected() -> None:
    data = bbolt.encode({b"a": {f"k{i:04d}".encode(): b"v" * 64 for i in range(500)}})
    with pytest.raises(bbolt.BoltFormatError):
        bbolt.read(data[: len(data) - PAGE])
    with pytest.raises(bbolt.BoltFormatError, match="top-level"):
        bbolt.encode({b"a": b"not a bucket"})
    with pytest.raises(bbolt.BoltFormatError, match="non-empty bytes"):
        bbolt.encode({b"a": {b"": b"v"}})


_keys = st.binary(min_size=1, max_size=24)
_values = st.binary(max_size=300)
_buckets = st.recursive(
    st.dictionaries(_keys, _values, max_size=30),
    lambda children: st.dictionaries(_keys, st.one_of(_values, children), max_size=8),
    max_leaves=200,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_keys, _buckets, max_size=6))
def test_any_tree_round_trips(tree: dict) -> None:
    assert bbolt.check(bbolt.encode(tree)) == tree
