"""A placement file's batches, parsed in a process of their own while the import writes.

Parsing and validating a row is pure Python, and so is much of writing it. In a thread the
two take turns on the interpreter's lock: an import that parsed in a thread ran no faster
than one that parsed the whole file first and wrote it afterwards. A child process
(``python -m debtflow_core.placement_parser``) parses on another core instead. It reads its
:class:`ParseRequest` from stdin and writes the batches to stdout, each a msgpack frame
behind its length; the pipe and the reader's buffer hold a few batches (about 2 MiB), so
the child stays that far ahead and memory stays flat whatever the file's size.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import msgspec

from debtflow_core.domain.imports import ImportRowError, superseded
from debtflow_core.placement import PlacementFileRejected, PlacementReader, PlacementRow

BATCH_ROWS = 1000
"""Rows read per batch, and so per transaction."""

_READ_BUFFER = 1024 * 1024  # the reader pauses at twice this: about six batches of 1000 rows
_LENGTH = 4  # bytes of a frame's length, big-endian


class Chunk(msgspec.Struct, tag=True, kw_only=True):
    """A batch of the file: its valid rows, its bad rows' errors, how many rows it read
    and the file's last line it covers."""

    rows: list[PlacementRow]
    errors: list[ImportRowError]
    rows_read: int
    lines_done: int


class _End(msgspec.Struct, tag=True):
    ignored_columns: tuple[str, ...]


class _Rejected(msgspec.Struct, tag=True):
    detail: str


class _Crashed(msgspec.Struct, tag=True):
    error: str


_Message = Chunk | _End | _Rejected | _Crashed


class ParseRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the child parses: the rows of ``path`` after line ``skip_through``."""

    path: str
    delimiter: str
    column_mapping: dict[str, str]
    skip_through: int


def chunks(
    path: Path,
    *,
    delimiter: str,
    column_mapping: Mapping[str, str],
    skip_through: int,
    on_header: Callable[[tuple[str, ...]], None],
) -> Iterator[Chunk]:
    """The file's rows after line ``skip_through`` in chunks of :data:`BATCH_ROWS` rows read.

    Within a chunk an account named twice keeps its later row; the earlier becomes an error.
    """
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = PlacementReader(stream, delimiter=delimiter, column_mapping=column_mapping)
        on_header(reader.ignored_columns)
        rows: dict[str, PlacementRow] = {}
        errors: list[ImportRowError] = []
        read = last = 0
        for item in reader:
            last = item.line
            if last <= skip_through:
                continue
            read += 1
            if isinstance(item, ImportRowError):
                errors.append(item)
            else:
                earlier = rows.pop(item.account_id, None)
                if earlier is not None:
                    errors.append(superseded(earlier.line, item.line))
                rows[item.account_id] = item
            if read == BATCH_ROWS:
                yield _chunk(rows, errors, read, last)
                rows, errors, read = {}, [], 0
        if read:
            yield _chunk(rows, errors, read, last)


def _chunk(
    rows: dict[str, PlacementRow], errors: list[ImportRowError], read: int, last: int
) -> Chunk:
    return Chunk(rows=list(rows.values()), errors=errors, rows_read=read, lines_done=last)


class PlacementParser:
    """The batches of one file from a child process; an async context manager.

    Leaving the block, however it is left, stops the child. :meth:`next` raises
    :class:`PlacementFileRejected` for a file that cannot be imported, and ``RuntimeError``
    if the child failed otherwise or stopped without a word.
    """

    def __init__(self, request: ParseRequest) -> None:
        self._request = request
        self._process: asyncio.subprocess.Process | None = None
        self._decoder = msgspec.msgpack.Decoder(_Message)
        self.ignored_columns: tuple[str, ...] = ()

    async def __aenter__(self) -> PlacementParser:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # modules from the installation, never from the working directory
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_READ_BUFFER,
            start_new_session=True,  # a Ctrl-C is the parent's to handle; it stops the child
        )
        assert self._process.stdin is not None
        self._process.stdin.write(msgspec.msgpack.encode(self._request))
        self._process.stdin.close()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        await process.wait()

    async def next(self) -> Chunk | None:
        """The next batch, or None once the file is done."""
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        try:
            length = int.from_bytes(await stdout.readexactly(_LENGTH), "big")
            message = self._decoder.decode(await stdout.readexactly(length))
        except asyncio.IncompleteReadError:
            code = await self._process.wait()
            raise RuntimeError(f"the placement parser stopped (exit code {code})") from None
        except msgspec.DecodeError as error:
            raise RuntimeError(f"the placement parser sent an unreadable frame: {error}") from None
        match message:
            case Chunk():
                return message
            case _End(ignored_columns):
                self.ignored_columns = ignored_columns
                return None
            case _Rejected(detail):
                raise PlacementFileRejected(detail)
            case _Crashed(error):
                raise RuntimeError(f"the placement parser failed: {error}")


def _send(out: BinaryIO, message: _Message, encode: Callable[[object], bytes]) -> None:
    frame = encode(message)
    out.write(len(frame).to_bytes(_LENGTH, "big"))
    out.write(frame)
    out.flush()


def main() -> None:
    """The child: parse the request read from stdin, writing frames to stdout."""
    # The frames get stdout's pipe to themselves: anything else written to stdout goes to
    # stderr instead of into the frames.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    request = msgspec.msgpack.decode(sys.stdin.buffer.read(), type=ParseRequest)
    encode = msgspec.msgpack.Encoder().encode
    header: list[tuple[str, ...]] = []
    try:
        for chunk in chunks(
            Path(request.path),
            delimiter=request.delimiter,
            column_mapping=request.column_mapping,
            skip_through=request.skip_through,
            on_header=header.append,
        ):
            _send(out, chunk, encode)
        _send(out, _End(header[0] if header else ()), encode)
    except PlacementFileRejected as error:
        _send(out, _Rejected(error.detail), encode)
    except BrokenPipeError:
        os._exit(1)  # the parent is gone: nobody to tell, and no flush at exit to fail again
    except Exception as error:  # told to the parent, which raises it for the run
        _send(out, _Crashed(f"{type(error).__name__}: {error}"), encode)


if __name__ == "__main__":
    main()
