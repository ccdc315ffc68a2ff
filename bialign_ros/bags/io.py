"""Reading and writing rosbag2 bags (sqlite3 and MCAP) with the ``rosbags`` library.

:class:`BagReader` opens a bag directory, a bag directory without ``metadata.yaml`` (a
recording that was killed) or a bare ``.mcap``/``.db3`` file. A truncated or damaged storage
file does not stop it: the messages before the damage are read (MCAP by scanning its records,
sqlite3 from a copy whose header is repaired) and :attr:`BagReader.damage` names the file and
the problem, so callers evaluate what is readable and then report the error.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from types import TracebackType
from typing import Any

import apsw
from rosbags.rosbag2 import Reader, ReaderError, Writer, WriterError
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.storage_mcap import decompress

from bialign_ros.bags.messages import typestore

ROSBAG2_VERSION = 9
"""rosbag2 metadata version written: the one of Jazzy and Kilted."""
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}

# What reading a damaged storage file can raise inside rosbags (MCAP parsing, apsw, sqlite3).
_STORAGE_ERRORS = (ReaderError, apsw.Error, sqlite3.Error, struct.error, OSError, EOFError,
                   UnicodeDecodeError)


class BagError(ValueError):
    """A bag cannot be opened or written, or lacks what was asked of it."""


class TopicNotFoundError(BagError):
    """A topic asked for is not in the bag; the message lists the topics that are."""


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag."""

    name: str
    msgtype: str
    count: int | None
    """Number of messages, or None when a damaged file hides it."""


@dataclass(frozen=True)
class BagMessage:
    """One serialised message and the time it was logged (nanoseconds)."""

    topic: str
    msgtype: str
    log_time: int
    data: bytes

    def decode(self) -> Any:
        """Deserialise into a ``rosbags`` message object."""
        return typestore().deserialize_cdr(self.data, self.msgtype)


def describe_topics(topics: dict[str, TopicInfo]) -> str:
    """``/a [type, N msgs], /b [...]`` for error messages."""
    if not topics:
        return "none (the bag holds no topics)"
    return ", ".join(f"{t.name} [{t.msgtype}, {'?' if t.count is None else t.count} msgs]"
                     for t in sorted(topics.values(), key=lambda t: t.name))


class _RosbagsSource:
    """A bag directory or storage file read by ``rosbags``; damage during reading is recorded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reader = Reader(path)
        self.reader.open()
        self.damage: str | None = None
        self.topics: dict[str, TopicInfo] = {}
        for conn in self.reader.connections:
            known = self.topics.get(conn.topic)
            count = conn.msgcount + (known.count if known else 0)
            self.topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count)

    def messages(self, topics: Collection[str]) -> Iterator[BagMessage]:
        conns = [c for c in self.reader.connections if c.topic in topics]
        if not conns:
            return
        read: dict[str, int] = dict.fromkeys(topics, 0)
        stream = self.reader.messages(conns)
        while True:
            try:
                conn, log_time, data = next(stream)
            except StopIteration:
                break
            except _STORAGE_ERRORS as exc:
                self.damage = (f"{self._file()} is damaged: {exc}; {sum(read.values())} messages read "
                               "before it")
                return
            read[conn.topic] += 1
            yield BagMessage(conn.topic, conn.msgtype, log_time, bytes(data))
        short = [f"{t}: {read[t]} of {self.topics[t].count}" for t in topics
                 if self.topics[t].count is not None and read[t] < self.topics[t].count]
        if short:
            self.damage = (f"{self._file()} ends early: its metadata lists more messages than it holds "
                           f"({', '.join(short)})")

    def _file(self) -> Path:
        files = _storage_files(self.path) if self.path.is_dir() else []
        return files[0] if len(files) == 1 else self.path

    def close(self) -> None:
        self.reader.close()


_MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK, _OP_DATA_END = 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F


def _read_str(rec: BytesIO) -> str:
    (size,) = struct.unpack("<I", rec.read(4))
    return rec.read(size).decode()


class _McapSalvage:
    """Sequential scan of an MCAP file that stops cleanly at the first cut-off or corrupt record.

    A chunk cut off by the end of the file still gives the complete records at its start
    (decompressed as far as the data goes).
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        self.damage: str | None = None
        self._schemas: dict[int, str] = {}
        self._channels: dict[int, tuple[str, str]] = {}
        counts: dict[str, int] = {}
        for topic, _, _, _ in self._scan():
            counts[topic] = counts.get(topic, 0) + 1
        self.topics = {topic: TopicInfo(topic, msgtype, counts.get(topic, 0))
                       for topic, msgtype in self._channels.values()}

    def messages(self, topics: Collection[str]) -> Iterator[BagMessage]:
        for topic, msgtype, log_time, data in self._scan():
            if topic in topics:
                yield BagMessage(topic, msgtype, log_time, data)

    def _scan(self) -> Iterator[tuple[str, str, int, bytes]]:
        read = 0
        with self.path.open("rb") as f:
            if f.read(8) != _MCAP_MAGIC:
                raise BagError(f"{self.path} is not an MCAP file (no MCAP magic bytes)")
            while True:
                offset = f.tell()
                head = f.read(9)
                if len(head) < 9:
                    self.damage = (f"{self.path} is truncated ({self.reason}): it ends at byte {offset} "
                                   f"without the MCAP footer; {read} messages read before it")
                    return
                op, length = head[0], struct.unpack("<Q", head[1:])[0]
                if op in (_OP_FOOTER, _OP_DATA_END):
                    return
                content = f.read(length)
                complete = len(content) == length
                try:
                    if op == _OP_CHUNK:
                        records = _chunk_records(content, complete)
                    else:
                        records = [(op, content)] if complete else []
                    for inner_op, inner in records:
                        message = self._record(inner_op, inner)
                        if message is not None:
                            read += 1
                            yield message
                except (ReaderError, struct.error, UnicodeDecodeError, KeyError, ValueError) as exc:
                    self.damage = (f"{self.path} is damaged ({self.reason}): bad record at byte {offset} "
                                   f"({exc}); {read} messages read before it")
                    return
                if not complete:
                    what = "chunk" if op == _OP_CHUNK else "record"
                    self.damage = (f"{self.path} is truncated ({self.reason}): the {what} at byte {offset} "
                                   f"is cut off; {read} messages read before the cut")
                    return

    def _record(self, op: int, content: bytes) -> tuple[str, str, int, bytes] | None:
        rec = BytesIO(content)
        if op == _OP_SCHEMA:
            (schema_id,) = struct.unpack("<H", rec.read(2))
            self._schemas[schema_id] = _read_str(rec)
        elif op == _OP_CHANNEL:
            channel_id, schema_id = struct.unpack("<HH", rec.read(4))
            self._channels[channel_id] = (_read_str(rec), self._schemas[schema_id])
        elif op == _OP_MESSAGE:
            channel_id, _, log_time, _ = struct.unpack("<HIQQ", rec.read(22))
            topic, msgtype = self._channels[channel_id]
            return topic, msgtype, log_time, rec.read()
        return None

    def close(self) -> None:
        """Nothing stays open between scans."""


def _chunk_records(content: bytes, complete: bool) -> list[tuple[int, bytes]]:
    """The records inside an MCAP chunk; of a cut-off chunk, the complete ones at its start."""
    rec = BytesIO(content)
    try:
        _, _, size, crc = struct.unpack("<QQQI", rec.read(28))
        compression = _read_str(rec)
        (compressed_size,) = struct.unpack("<Q", rec.read(8))
    except struct.error:
        if complete:
            raise
        return []
    if complete:
        data = decompress(rec.read(compressed_size), compression, size, crc)
    else:
        data = _decompress_prefix(rec.read(compressed_size), compression)
    records, pos = [], 0
    while pos + 9 <= len(data):
        op, length = data[pos], struct.unpack_from("<Q", data, pos + 1)[0]
        if pos + 9 + length > len(data):
            break
        records.append((op, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return records


def _decompress_prefix(data: bytes, compression: str) -> bytes:
    """As much of a cut-off compressed chunk as decompresses."""
    if compression == "":
        return data
    if compression == "zstd":
        if sys.version_info >= (3, 14):
            from compression import zstd
        else:
            from backports import zstd
        return zstd.ZstdDecompressor().decompress(data)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.LZ4FrameDecompressor().decompress(data)
    raise ReaderError(f"unsupported MCAP chunk compression {compression!r}")


class _SqliteSalvage:
    """Reads a damaged rosbag2 sqlite3 file from a copy whose page count matches what is left."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        self.damage: str | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="bialign_salvage_")
        copy = Path(self._tmp.name) / path.name
        try:
            shutil.copyfile(path, copy)
            _repair_page_count(copy)
            self._db = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
            rows = self._db.execute("SELECT id, name, type FROM topics").fetchall()
        except (sqlite3.Error, ValueError) as exc:
            self._tmp.cleanup()
            raise BagError(f"{path} is damaged beyond reading ({reason}; {exc})") from None
        self._topic_ids = {row[0]: (row[1], row[2]) for row in rows}
        counts: dict[int, int] | None
        try:
            query = "SELECT topic_id, COUNT(*) FROM messages GROUP BY topic_id"
            counts = dict(self._db.execute(query).fetchall())
        except sqlite3.Error:
            counts = None
        self.topics = {name: TopicInfo(name, msgtype, None if counts is None else counts.get(tid, 0))
                       for tid, (name, msgtype) in self._topic_ids.items()}

    def messages(self, topics: Collection[str]) -> Iterator[BagMessage]:
        # Always the whole table in rowid order, so the damaged page stops every topic at the same point.
        ids = {tid for tid, (name, _) in self._topic_ids.items() if name in topics}
        if not ids:
            return
        read = 0
        try:
            for topic_id, log_time, data in self._db.execute(
                    "SELECT topic_id, timestamp, data FROM messages ORDER BY rowid"):
                if topic_id not in ids:
                    continue
                name, msgtype = self._topic_ids[topic_id]
                read += 1
                yield BagMessage(name, msgtype, log_time, bytes(data))
        except sqlite3.Error as exc:
            self.damage = f"{self.path} is damaged ({exc}); {read} messages read before the damaged part"
            return
        self.damage = f"{self.path} is damaged ({self.reason}); the {read} messages still in it were read"

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()


def _repair_page_count(db: Path) -> None:
    """Drop a partial last page and set the header's page count to the pages present.

    SQLite refuses a file shorter than its header's page count ("database disk image is
    malformed") before reading a single row; with the count fixed it reads every intact page.
    """
    with db.open("r+b") as f:
        head = f.read(100)
        if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
            raise ValueError("no sqlite3 database header")
        (page_size,) = struct.unpack(">H", head[16:18])
        page_size = 65536 if page_size == 1 else page_size
        pages = f.seek(0, 2) // page_size
        f.truncate(pages * page_size)
        f.seek(28)
        f.write(struct.pack(">I", pages))


def _open_storage(path: Path) -> Any:
    """A source for one storage file: ``rosbags`` when it opens, else a salvage reader."""
    try:
        return _RosbagsSource(path)
    except ReaderError as exc:
        reason = str(exc)
    if path.suffix == ".mcap":
        return _McapSalvage(path, reason)
    return _SqliteSalvage(path, reason)


def _storage_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file())


class BagReader:
    """Read-only access to a rosbag2 bag; use as a context manager.

    ``path`` is a bag directory, a bag directory without ``metadata.yaml`` or a ``.mcap`` /
    ``.db3`` file. Raises :class:`BagError` naming the path when nothing is readable.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        """Remarks about how the bag was read (e.g. a missing metadata.yaml)."""
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_dir():
            files = _storage_files(self.path)
            if (self.path / "metadata.yaml").is_file():
                try:
                    self._sources = [_RosbagsSource(self.path)]
                except (ReaderError, FileNotFoundError) as exc:
                    if not files:
                        raise BagError(f"bag {self.path} cannot be read: {exc}") from None
                    self.notes.append(f"{self.path}: {exc}; reading its storage files directly")
                    self._sources = [_open_storage(f) for f in files]
            elif files:
                self.notes.append(f"{self.path} has no metadata.yaml (an interrupted recording?); "
                                  f"reading {', '.join(f.name for f in files)} directly")
                self._sources = [_open_storage(f) for f in files]
            else:
                raise BagError(f"{self.path} is not a rosbag2 bag: no metadata.yaml, *.mcap or *.db3 inside")
        elif self.path.suffix in STORAGE_SUFFIXES:
            self._sources = [_open_storage(self.path)]
        else:
            raise BagError(f"{self.path} is not a rosbag2 bag: expected a bag directory or a .mcap/.db3 file")

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Every topic of the bag, by name."""
        merged: dict[str, TopicInfo] = {}
        for source in self._sources:
            for name, info in source.topics.items():
                known = merged.get(name)
                count = info.count
                if known is not None:
                    count = None if known.count is None or count is None else known.count + count
                merged[name] = TopicInfo(name, info.msgtype, count)
        return merged

    def topic(self, name: str, msgtypes: Collection[str] = ()) -> TopicInfo:
        """The topic ``name``; :class:`TopicNotFoundError` lists the bag's topics when it is absent,
        :class:`BagError` says so when its type is not one of ``msgtypes`` (when given)."""
        info = self.topics.get(name)
        if info is None:
            raise TopicNotFoundError(f"topic {name!r} is not in bag {self.path}; its topics: "
                                     f"{describe_topics(self.topics)}")
        if msgtypes and info.msgtype not in msgtypes:
            raise BagError(f"topic {name!r} in bag {self.path} has type {info.msgtype}; expected "
                           f"{' or '.join(msgtypes)}")
        return info

    def messages(self, topics: Collection[str] | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (default: all) in the order of the bag; stops at damage."""
        wanted = set(self.topics) if topics is None else set(topics)
        for source in self._sources:
            yield from source.messages([t for t in source.topics if t in wanted])

    @property
    def damage(self) -> str | None:
        """What was found wrong with the storage files while reading, or None."""
        found = [s.damage for s in self._sources if s.damage]
        return "; ".join(found) if found else None

    def close(self) -> None:
        """Close every storage file."""
        for source in self._sources:
            source.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class BagWriter:
    """Writes a new rosbag2 bag directory (``mcap`` or ``sqlite3``); use as a context manager
    (an exception inside deletes the unfinished bag).

    Messages are ``rosbags`` objects of :func:`bialign_ros.bags.messages.typestore`, or already
    serialised CDR bytes (:meth:`write_raw`).
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already; give a new bag path (bags are never overwritten)")
        self.storage = storage
        self._writer = Writer(self.path, version=ROSBAG2_VERSION, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare ``topic`` with ``msgtype`` (once per topic)."""
        if topic in self._connections:
            raise BagError(f"topic {topic!r} is already in {self.path}")
        try:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=typestore())
        except (WriterError, KeyError) as exc:
            raise BagError(f"cannot add topic {topic!r} of type {msgtype!r} to {self.path}: {exc}") from None
        self.counts[topic] = 0

    def write(self, topic: str, log_time: int, msg: Any) -> None:
        """Serialise ``msg`` and write it on ``topic`` at ``log_time`` (nanoseconds)."""
        self.write_raw(topic, log_time, typestore().serialize_cdr(msg, self._connections[topic].msgtype))

    def write_raw(self, topic: str, log_time: int, data: bytes) -> None:
        """Write serialised CDR bytes on ``topic`` at ``log_time`` (nanoseconds)."""
        if topic not in self._connections:
            raise BagError(f"topic {topic!r} was not added to {self.path}")
        self._writer.write(self._connections[topic], int(log_time), data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the storage file and write ``metadata.yaml``."""
        self._writer.close()

    def abort(self) -> None:
        """Stop writing and delete the unfinished bag."""
        self._writer.abort()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()
