"""A bytecode cache for the methods attrs writes for our classes.

attrs makes each class's ``__init__``, ``__eq__``, ``__hash__``, ``__repr__``
… by compiling generated source when the class is defined: for the 110
classes of this package that is about 60 ms of every process start, a
sixth of a command-line query's (issue 10: a fast cold start). Python
keeps no ``.pyc`` for generated source, so this module keeps one: the
compiled code of the script attrs generated for each of this package's
classes, in one ``marshal`` file in the package's ``__pycache__``, by the
script's file name (which names the class) with the script it was compiled
from. The scripts are attrs' own, so the code is what attrs would have
compiled (but for the salt of ``__hash__``, see ``_SALT``); a class whose
script changed is compiled again and replaces its entry, so the file holds
one entry per class; a different attrs (told apart by its generating
module's size and time) or Python version has a file of its own.

Like Python's own bytecode cache it is written only when bytecode may be
written (``sys.dont_write_bytecode`` unset) and the directory is writable;
a missing, unreadable or stale file only costs the compiling it saves.
If attrs no longer has the hook this relies on, nothing is patched.

Importing this module installs it: the application and the command line
import it before any module defining classes.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import marshal
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attr import _make

_HOOK = "_compile_and_eval"


def _cache_file() -> Path:
    # attrs' ``__version__`` reads the installed metadata (tens of ms): the
    # size and time of the module that writes the scripts tell versions apart
    try:
        made = os.stat(_make.__file__)
        attrs_tag = f"{made.st_size:x}{made.st_mtime_ns:x}"
    except (OSError, TypeError):
        attrs_tag = "unknown"
    tag = sys.implementation.cache_tag or "python"
    magic = importlib.util.MAGIC_NUMBER.hex()
    return Path(__file__).parent / "__pycache__" / f"attrs-{attrs_tag}.{tag}-{magic}.code"


def _load(path: Path) -> dict[str, tuple[str, Any]]:
    try:
        data = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, codes: dict[str, tuple[str, Any]]) -> None:
    if sys.dont_write_bytecode:
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps(codes))
            os.chmod(tmp, 0o644)  # readable by every user of the installation, as a .pyc
            os.replace(tmp, path)  # atomic: a concurrent reader sees one file or the other
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def install() -> None:
    """From now on, the scripts attrs generates for this package's classes come
    from (and go to) the cache file; other classes' are compiled as before."""
    original = getattr(_make, _HOOK, None)
    if original is None or getattr(original, "_esmc_cached", False):
        return  # attrs changed, or installed already
    path = _cache_file()
    #: by file name: (the script without its salt, its code)
    codes = _load(path)
    added: dict[str, tuple[str, Any]] = {}

    def compile_and_eval(
        script: str,
        globs: dict[str, Any] | None,
        locs: Mapping[str, object] | None = None,
        filename: str = "",
    ) -> None:
        if _OURS not in filename:
            original(script, globs, locs, filename)
            return
        unsalted = _SALT.sub("hash((SALT,", script)
        kept = codes.get(filename)
        if kept is not None and kept[0] == unsalted:
            code = kept[1]
        else:
            code = compile(script, filename, "exec")
            added[filename] = (unsalted, code)
            if len(added) == 1:
                atexit.register(lambda: _save(path, {**codes, **added}))
        eval(code, globs, locs)  # attrs' own generated script, run as attrs runs it

    compile_and_eval._esmc_cached = True  # type: ignore[attr-defined]
    setattr(_make, _HOOK, compile_and_eval)


#: in the file name attrs gives the scripts of this package's classes
_OURS = f" {__package__}."

#: attrs salts a class's ``__hash__`` with the hash of its script's file name,
#: which changes with every process (string hashing is randomised): the key
#: leaves it out, and the cached code keeps the salt of the process that
#: compiled it -- any constant serves, hashes differ between processes anyway
_SALT = re.compile(r"hash\(\(\s*-?\d+,")


install()
