"""Atomic NPZ writing and safe NPZ reading, shared by every file this project writes."""
from __future__ import annotations

import logging
import pickletools
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .atomic_write import atomic_write, set_new_file_mode

__all__ = ["atomic_savez", "load_npz", "pickled_text", "read_npy_header", "set_new_file_mode"]

log = logging.getLogger(__name__)


def atomic_savez(path, arrays: dict, *, compressed: bool = False) -> Path:
    """Write ``arrays`` to ``path`` as NPZ, all or nothing.

    The data go to a temporary file in the target directory, are flushed to
    disk, get the mode a plain ``np.savez`` would have given the file (see
    :func:`set_new_file_mode`), and only then are renamed over ``path``: an
    interrupted or failing write leaves any existing file untouched and no
    partial file behind. ``path`` is used as given (no ``.npz`` is added).
    Object arrays are refused, so every file reloads with ``allow_pickle=False``.
    """
    path = Path(path)
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"array {key!r} has dtype object and cannot be saved without pickle")
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return path


def read_npy_header(fh):
    """``(shape, fortran_order, dtype)`` of the ``.npy`` stream at ``fh``; never unpickles.

    Only the magic string and the header are read, leaving ``fh`` at the
    first data byte. NumPy's own size limit on headers applies.

    Raises
    ------
    ValueError
        When the stream is not a ``.npy`` array (bad magic, bad header).
    """
    version = np.lib.format.read_magic(fh)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    return read_header(fh)


def _member_name(zf: zipfile.ZipFile, key: str) -> str:
    """The zip member behind NpzFile key ``key`` (which drops a ``.npy`` suffix)."""
    return key + ".npy" if key + ".npy" in zf.namelist() else key


def _is_pickled_scalar(zf: zipfile.ZipFile, key: str) -> bool:
    """True when member ``key`` is a 0-d object array, as ``np.savez(..., k=None)`` writes.

    Only the ``.npy`` header is read (decompressing a few bytes if needed).
    """
    with zf.open(_member_name(zf, key)) as fh:
        shape, _, dtype = read_npy_header(fh)
    return dtype.hasobject and shape == ()


class _Global:
    """A ``module.name`` a pickle refers to; named only, never imported."""

    def __init__(self, module: str, name: str):
        self.key = (module, name)


class _Call:
    """``func(*args)`` as a pickle's REDUCE would make it; never called."""

    def __init__(self, func: _Global, args: tuple):
        self.func, self.args = func, args


class _Built:
    """``obj.__setstate__(state)`` as a pickle's BUILD would do it; never done."""

    def __init__(self, obj, state):
        self.obj, self.state = obj, state


#: The callables a pickled 0-d object ndarray names (NumPy 1 and 2 module
#: paths; ``_codecs.encode`` is how protocol 2 spells bytes).
_ARRAY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"),
                  ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
_MARK = object()
_PUSH_ARG = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES",
             "BINBYTES8", "BININT", "BININT1", "BININT2", "LONG1"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}
_IGNORED = {"PROTO", "FRAME", "STOP"}


class _NotPlainText(ValueError):
    pass


def _symbolic_pickle(stream: bytes):
    """Evaluate a pickle symbolically: globals stay names, calls stay records.

    Only the opcodes a pickled NumPy array of strings uses are understood;
    any other opcode (an instance, an extension, a persistent id...) is
    refused. Nothing is imported, called or constructed.
    """
    stack, memo = [], {}

    def pop_to_mark():
        items = []
        while stack:
            item = stack.pop()
            if item is _MARK:
                return items[::-1]
            items.append(item)
        raise _NotPlainText("MARK missing")

    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in _IGNORED:
            continue
        if name in _PUSH_ARG:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "TUPLE":
            stack.append(tuple(pop_to_mark()))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif name == "APPENDS":
            items = pop_to_mark()
            stack[-1].extend(items)
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, attr = arg.split(" ", 1)
            else:
                attr, module = stack.pop(), stack.pop()
            if (module, attr) not in _ARRAY_GLOBALS:
                raise _NotPlainText(f"refers to {module}.{attr}")
            stack.append(_Global(module, attr))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            if not isinstance(func, _Global) or not isinstance(args, tuple):
                raise _NotPlainText("calls something that is not a NumPy array constructor")
            stack.append(_Call(func, args))
        elif name == "BUILD":
            state = stack.pop()
            stack.append(_Built(stack.pop(), state))
        else:
            raise _NotPlainText(f"uses the pickle opcode {name}")
    if len(stack) != 1:
        raise _NotPlainText("is not one pickled object")
    return stack[0]


def _is_call(value, module_attrs) -> bool:
    return isinstance(value, _Call) and value.func.key in module_attrs


def pickled_text(stream: bytes) -> str:
    """The string held by a pickled 0-d object array, read without unpickling.

    ``stream`` is the data of a ``.npy`` member after its header: what
    ``np.save`` writes for ``np.array(text, dtype=object)``. The pickle is
    walked opcode by opcode (:func:`pickletools.genops`) and must have
    exactly the shape of such an array whose one element is a ``str``.

    Raises
    ------
    ValueError
        Saying what else the pickle holds; nothing in it has been run.
    """
    try:
        root = _symbolic_pickle(stream)
    except _NotPlainText:
        raise
    except Exception as exc:  # truncated or malformed stream, stack underflow...
        raise _NotPlainText(f"is not a readable pickle ({exc})") from None
    reconstruct = {("numpy.core.multiarray", "_reconstruct"),
                   ("numpy._core.multiarray", "_reconstruct")}
    if not (isinstance(root, _Built) and _is_call(root.obj, reconstruct)
            and root.obj.args[:1] and isinstance(root.obj.args[0], _Global)
            and root.obj.args[0].key == ("numpy", "ndarray")):
        raise _NotPlainText("is not a pickled NumPy array")
    state = root.state
    if not (isinstance(state, tuple) and len(state) == 5):
        raise _NotPlainText("is not a pickled NumPy array")
    _, shape, dtype, _, items = state
    dtype_call = dtype.obj if isinstance(dtype, _Built) else dtype
    if not (_is_call(dtype_call, {("numpy", "dtype")}) and dtype_call.args[:1] == ("O8",)):
        raise _NotPlainText("is not an object array")
    if shape != ():
        raise _NotPlainText(f"is an array of shape {shape}, not a single value")
    if not (isinstance(items, list) and len(items) == 1 and isinstance(items[0], str)):
        raise _NotPlainText("holds something other than a string")
    return items[0]


def _member_text(zf: zipfile.ZipFile, key: str):
    """The string of a pickled 0-d object member ``key``, or None if it is no such member."""
    with zf.open(_member_name(zf, key)) as fh:
        shape, _, dtype = read_npy_header(fh)
        if not dtype.hasobject:
            return None
        return pickled_text(fh.read())


def _memmap_member(path: Path, info: zipfile.ZipInfo) -> np.memmap:
    """A read-only memory map of one uncompressed ``.npy`` member of a zip."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: member {info.filename!r} is compressed and cannot be "
                         "memory-mapped; write the file with np.savez (not savez_compressed)")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)  # the zip local file header precedes the member's bytes
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        shape, fortran, dtype = read_npy_header(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: member {info.filename[:-4]!r} is a pickled object array, "
                         "which is refused for safety")
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset,
                     order="F" if fortran else "C")


def load_npz(path, mmap_keys=(), optional_keys=(), text_keys=()) -> dict:
    """All arrays of an NPZ file, loaded with ``allow_pickle=False``.

    Parameters
    ----------
    path : str or os.PathLike
    mmap_keys : iterable of str
        Members memory-mapped read-only instead of loaded (the NPZ must store
        them uncompressed).
    optional_keys : iterable of str
        Members that may hold the pickled 0-d placeholder ``np.savez`` writes
        for ``None`` (as PtychoPINN's ``to_file`` does for a missing object).
        Such a member is recognised from its header, never unpickled, and
        left out of the result as if absent.
    text_keys : iterable of str
        Members that may hold one string pickled as a 0-d object array, as
        PtychoPINN's ``MetadataManager`` writes ``_metadata``. The string is
        recovered without unpickling (:func:`pickled_text`) and returned as a
        0-d unicode array; a member that pickles anything else is left out
        with a ``UserWarning`` naming the file, and nothing in it is run. A
        text member stored as a plain unicode array loads as usual.

    Returns
    -------
    dict
        Member name to array.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming the file when it is not an NPZ (zip) archive or not readable,
        and naming the member when it holds any other pickled object array
        (refused, never unpickled).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            is_zip = zipfile.is_zipfile(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ValueError(f"{path} is not a readable NPZ file: {exc}") from exc
    # np.load would take a .npy file or a text file for a pickle and fail obscurely.
    if not is_zip:
        raise ValueError(f"{path} is not an NPZ (zip) archive")
    try:
        with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as npz:
            out, skipped = {}, set()
            for key in npz.files:
                if key in text_keys:
                    try:
                        text = _member_text(zf, key)
                    except _NotPlainText as exc:
                        warnings.warn(f"{path}: member {key!r} skipped: its pickle {exc}; "
                                      "it was not unpickled", UserWarning, stacklevel=3)
                        skipped.add(key)
                        continue
                    if text is not None:
                        out[key] = np.array(text)
                        continue
                if key in optional_keys and _is_pickled_scalar(zf, key):
                    log.info("%s: optional member %r holds a pickled placeholder "
                             "(None); treated as absent", path, key)
                    skipped.add(key)
                elif key in mmap_keys:
                    out[key] = _memmap_member(path, zf.getinfo(_member_name(zf, key)))
            for key in npz.files:
                if key in out or key in skipped:
                    continue
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    raise ValueError(f"{path}: member {key!r} is a pickled object array, "
                                     "which is refused for safety") from exc
            return out
    except MemoryError:
        raise  # a file too large to load is readable: say what really happened
    except Exception as exc:  # zipfile.BadZipFile, truncated members and friends
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise
        raise ValueError(f"{path} is not a readable NPZ file: {exc}") from exc
