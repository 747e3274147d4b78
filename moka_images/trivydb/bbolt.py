"""The bbolt (etcd-io/bbolt) file format: write a whole database at once, and read one back for checks.

Only what trivy needs: nested buckets of byte keys and values, written in one transaction. Layout:
page 0 and 1 are meta pages (FNV-64a checksum over the meta fields), page 2 an empty freelist, then each
bucket's B+tree (leaf pages, branch pages above them when a bucket outgrows a page). Small buckets without
sub-buckets are stored inline in their parent's value, as bbolt itself does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, Union

MAGIC = 0xED0CDAED
VERSION = 2
PAGE_SIZE = 4096

BRANCH_PAGE, LEAF_PAGE, META_PAGE, FREELIST_PAGE = 0x01, 0x02, 0x04, 0x10
BUCKET_LEAF_FLAG = 0x01

_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
_BRANCH_ELEMENT = struct.Struct("<IIQ")  # pos, ksize, pgid
_BUCKET_HEADER = struct.Struct("<QQ")  # root pgid, sequence
_META = struct.Struct("<IIII QQ Q Q Q")  # magic, version, page size, flags, root bucket, freelist, pgid, txid
_CHECKSUM = struct.Struct("<Q")

T = TypeVar("T")

# A bucket is a mapping of keys to values (bytes) or to nested buckets.
Bucket = Mapping[bytes, Union[bytes, "Bucket"]]


class BoltFormatError(ValueError):
    """The bytes are not a valid bbolt database (or the input cannot be written as one)."""


def fnv64a(data: bytes) -> int:
    """FNV-1a, 64 bit: bbolt's meta page checksum."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _meta_page(page_id: int, page_size: int, root: int, pgid: int, txid: int) -> bytes:
    fields = _META.pack(MAGIC, VERSION, page_size, 0, root, 0, 2, pgid, txid)
    meta = fields + _CHECKSUM.pack(fnv64a(fields))
    return (_PAGE_HEADER.pack(page_id, META_PAGE, 0, 0) + meta).ljust(page_size, b"\0")


@dataclass
class _Writer:
    page_size: int
    pages: list[bytes] = field(default_factory=list)  # data pages from page 3 on, each a multiple of page_size
    next_id: int = 3

    def bucket_value(self, bucket: Bucket, *, allow_inline: bool = True) -> bytes:
        """Write `bucket` (children first) and return its value in the parent: header + inline page, or root id."""
        elements: list[tuple[bytes, bytes, int]] = []
        for key in sorted(bucket):
            if not isinstance(key, bytes) or not key:
                raise BoltFormatError(f"bucket keys must be non-empty bytes, got {key!r}")
            value = bucket[key]
            if isinstance(value, Mapping):
                elements.append((key, self.bucket_value(value), BUCKET_LEAF_FLAG))
            elif isinstance(value, bytes):
                elements.append((key, value, 0))
            else:
                raise BoltFormatError(f"value of {key!r} must be bytes or a bucket, got {type(value).__name__}")
        leaf_size = _PAGE_HEADER.size + sum(_LEAF_ELEMENT.size + len(k) + len(v) for k, v, _ in elements)
        inlineable = not any(flags & BUCKET_LEAF_FLAG for _, _, flags in elements)
        if allow_inline and inlineable and leaf_size <= self.page_size // 4:
            return _BUCKET_HEADER.pack(0, 0) + _leaf_node(0, elements)
        return _BUCKET_HEADER.pack(self.tree(elements), 0)

    def tree(self, elements: list[tuple[bytes, bytes, int]]) -> int:
        """Write leaves for `elements` and the branch levels above them; return the root page id."""
        level = [(group[0][0] if group else b"", self.add(_leaf_node, group)) for group in self._split(
            elements, lambda e: _LEAF_ELEMENT.size + len(e[0]) + len(e[1]))]
        while len(level) > 1:
            level = [(group[0][0], self.add(_branch_node, group)) for group in self._split(
                level, lambda e: _BRANCH_ELEMENT.size + len(e[0]))]
        return level[0][1]

    def _split(self, items: list[T], size_of: Callable[[T], int]) -> list[list[T]]:
        """Pack items into nodes that fit one page (a single oversized item gets overflow pages)."""
        groups: list[list[T]] = [[]]
        used = _PAGE_HEADER.size
        for item in items:
            size = size_of(item)
            if groups[-1] and used + size > self.page_size:
                groups.append([])
                used = _PAGE_HEADER.size
            groups[-1].append(item)
            used += size
        return groups

    def add(self, encode: Callable[[int, list[T]], bytes], group: list[T]) -> int:
        """Encode one node at the next free page id; return that id."""
        page_id = self.next_id
        body = encode(page_id, group)
        count = -(-len(body) // self.page_size)
        body = body[:8] + struct.pack("<HHI", *struct.unpack_from("<HH", body, 8), count - 1) + body[16:]
        self.pages.append(body.ljust(count * self.page_size, b"\0"))
        self.next_id += count
        return page_id


def _leaf_node(page_id: int, elements: list[tuple[bytes, bytes, int]]) -> bytes:
    if len(elements) > 0xFFFF:
        raise BoltFormatError("more than 65535 keys on one page")
    headers, data = bytearray(), bytearray()
    table = _LEAF_ELEMENT.size * len(elements)
    for i, (key, value, flags) in enumerate(elements):
        pos = table - i * _LEAF_ELEMENT.size + len(data)  # relative to this element's own header
        headers += _LEAF_ELEMENT.pack(flags, pos, len(key), len(value))
        data += key + value
    return _PAGE_HEADER.pack(page_id, LEAF_PAGE, len(elements), 0) + bytes(headers) + bytes(data)


def _branch_node(page_id: int, children: list[tuple[bytes, int]]) -> bytes:
    headers, data = bytearray(), bytearray()
    table = _BRANCH_ELEMENT.size * len(children)
    for i, (key, child) in enumerate(children):
        pos = table - i * _BRANCH_ELEMENT.size + len(data)
        headers += _BRANCH_ELEMENT.pack(pos, len(key), child)
        data += key
    return _PAGE_HEADER.pack(page_id, BRANCH_PAGE, len(children), 0) + bytes(headers) + bytes(data)


def encode(root: Bucket, page_size: int = PAGE_SIZE) -> bytes:
    """The bytes of a bbolt database holding `root`'s top-level buckets."""
    for name, value in root.items():
        if not isinstance(value, Mapping):
            raise BoltFormatError(f"top-level entry {name!r} must be a bucket")
    writer = _Writer(page_size)
    root_value = writer.bucket_value(root, allow_inline=False)
    root_page = _BUCKET_HEADER.unpack_from(root_value)[0]
    pgid = writer.next_id
    freelist = _PAGE_HEADER.pack(2, FREELIST_PAGE, 0, 0).ljust(page_size, b"\0")
    # Two meta pages as bbolt's own init writes them: txid 0 and 1; readers use the valid one with the higher txid.
    metas = [_meta_page(i, page_size, root_page, pgid, i) for i in (0, 1)]
    return b"".join([*metas, freelist, *writer.pages])


def write(path: Path, root: Bucket, page_size: int = PAGE_SIZE) -> None:
    """Write `root` as a bbolt database file at `path`."""
    path.write_bytes(encode(root, page_size))


# ---- reading back: for tests and `check` -------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    """A decoded meta page."""

    page_size: int
    root: int
    freelist: int
    pgid: int
    txid: int


def read_meta(data: bytes, page_id: int, page_size: int = PAGE_SIZE) -> Meta:
    """Decode and validate one meta page (magic, version, checksum)."""
    offset = page_id * page_size + _PAGE_HEADER.size
    if len(data) < offset + _META.size + _CHECKSUM.size:
        raise BoltFormatError(f"file too short for meta page {page_id}")
    pid, flags, _, _ = _PAGE_HEADER.unpack_from(data, page_id * page_size)
    magic, version, psize, _, root, _, freelist, pgid, txid = _META.unpack_from(data, offset)
    (checksum,) = _CHECKSUM.unpack_from(data, offset + _META.size)
    if pid != page_id or flags != META_PAGE:
        raise BoltFormatError(f"page {page_id} is not a meta page (id {pid}, flags {flags:#x})")
    if magic != MAGIC:
        raise BoltFormatError(f"meta page {page_id}: bad magic {magic:#x}")
    if version != VERSION:
        raise BoltFormatError(f"meta page {page_id}: version {version}, expected {VERSION}")
    if checksum != fnv64a(data[offset: offset + _META.size]):
        raise BoltFormatError(f"meta page {page_id}: checksum mismatch")
    return Meta(psize, root, freelist, pgid, txid)


def _open(data: bytes) -> tuple[_Reader, dict[bytes, object]]:
    metas = []
    for page_id in (0, 1):
        try:
            metas.append(read_meta(data, page_id, _page_size(data)))
        except BoltFormatError:
            continue
    if not metas:
        raise BoltFormatError("no valid meta page")
    meta = max(metas, key=lambda m: m.txid)
    if len(data) < meta.pgid * meta.page_size:
        raise BoltFormatError(f"file has {len(data)} bytes, meta says {meta.pgid} pages of {meta.page_size}")
    reader = _Reader(data, meta)
    return reader, reader.node(meta.root)


def read(data: bytes) -> dict[bytes, object]:
    """Decode a whole database into nested dicts, checking page ids, flags, key order and page bounds."""
    return _open(data)[1]


def _page_size(data: bytes) -> int:
    if len(data) < _PAGE_HEADER.size + _META.size:
        raise BoltFormatError("file too short for a meta page")
    return _META.unpack_from(data, _PAGE_HEADER.size)[2]


@dataclass
class _Reader:
    data: bytes
    meta: Meta
    seen: set[int] = field(default_factory=set)

    def page(self, page_id: int) -> tuple[memoryview, int, int]:
        if not 3 <= page_id < self.meta.pgid:
            raise BoltFormatError(f"page {page_id} outside data pages 3..{self.meta.pgid - 1}")
        if page_id in self.seen:
            raise BoltFormatError(f"page {page_id} referenced twice")
        start = page_id * self.meta.page_size
        pid, flags, count, overflow = _PAGE_HEADER.unpack_from(self.data, start)
        if pid != page_id:
            raise BoltFormatError(f"page {page_id} identifies as {pid}")
        end = start + (overflow + 1) * self.meta.page_size
        if page_id + overflow >= self.meta.pgid:
            raise BoltFormatError(f"page {page_id} overflows past the high water mark")
        self.seen.update(range(page_id, page_id + overflow + 1))
        return memoryview(self.data)[start:end], flags, count

    def node(self, page_id: int) -> dict[bytes, object]:
        buf, flags, count = self.page(page_id)
        return self.parse(buf, flags, count)

    def parse(self, buf: memoryview, flags: int, count: int) -> dict[bytes, object]:
        out: dict[bytes, object] = {}
        base = _PAGE_HEADER.size
        if flags == LEAF_PAGE:
            for i in range(count):
                at = base + i * _LEAF_ELEMENT.size
                eflags, pos, ksize, vsize = _LEAF_ELEMENT.unpack_from(buf, at)
                key = bytes(buf[at + pos: at + pos + ksize])
                value = bytes(buf[at + pos + ksize: at + pos + ksize + vsize])
                if len(key) != ksize or len(value) != vsize:
                    raise BoltFormatError("leaf element points past its page")
                out[key] = self.bucket(value) if eflags & BUCKET_LEAF_FLAG else value
        elif flags == BRANCH_PAGE:
            for i in range(count):
                at = base + i * _BRANCH_ELEMENT.size
                pos, ksize, child = _BRANCH_ELEMENT.unpack_from(buf, at)
                key = bytes(buf[at + pos: at + pos + ksize])
                sub = self.node(child)
                if sub and next(iter(sub)) != key:
                    raise BoltFormatError(f"branch key {key!r} is not the first key of page {child}")
                out.update(sub)
        else:
            raise BoltFormatError(f"unexpected page flags {flags:#x} in a tree")
        keys = list(out)
        if keys != sorted(keys):
            raise BoltFormatError("keys are not in byte order")
        return out

    def bucket(self, value: bytes) -> dict[bytes, object]:
        root, _ = _BUCKET_HEADER.unpack_from(value)
        if root:
            return self.node(root)
        _, flags, count, _ = _PAGE_HEADER.unpack_from(value, _BUCKET_HEADER.size)
        if flags != LEAF_PAGE:
            raise BoltFormatError(f"inline bucket page has flags {flags:#x}")
        return self.parse(memoryview(value)[_BUCKET_HEADER.size:], flags, count)


def check(data: bytes) -> dict[bytes, object]:
    """Like `read`, and also require both meta pages valid and every page used exactly once or free."""
    for page_id in (0, 1):
        read_meta(data, page_id, _page_size(data))
    reader, tree = _open(data)
    meta = reader.meta
    pid, flags, count, _ = _PAGE_HEADER.unpack_from(data, meta.freelist * meta.page_size)
    if pid != meta.freelist or flags != FREELIST_PAGE:
        raise BoltFormatError(f"page {meta.freelist} is not the freelist")
    missing = set(range(3, meta.pgid)) - reader.seen
    if missing or count:
        raise BoltFormatError(f"pages neither used nor free: {sorted(missing)[:10]}")
    return tree
