"""A content fingerprint of a data folder: what `data.fingerprint` (and so the run id) records.

A changed h5 file under the same path must give a new run id, or a table would mix numbers of two datasets
under one name. The fingerprint hashes the list files, dataset.json and every listed case's h5 file (size and
content). The modification time only decides when a file must be hashed again: hashes are memoised per process
by (path, size, mtime, inode), so building many configs on one folder reads each file once, and `touch` or a
copy that keeps the bytes does not change the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

LIST_FILES = ("train.list", "test.list", "dataset.json")
_CHUNK = 1 << 20
_MEMO: dict[tuple, str] = {}


def file_digest(path: Path) -> str:
    """`size:hash` of a file's bytes, "missing", or "not-a-file" (memoised while the file is unchanged)."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    if not path.is_file():
        return "not-a-file"
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _MEMO:
        h = hashlib.blake2b(digest_size=16)
        try:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except OSError:
            return "unreadable"
        _MEMO[key] = f"{st.st_size}:{h.hexdigest()}"
    return _MEMO[key]


def _listed_ids(root: Path) -> list[str]:
    """Case ids of both lists, best effort (a broken list is reported by the readers, not here)."""
    ids: list[str] = []
    for name in ("train.list", "test.list"):
        try:
            text = (root / name).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    return list(dict.fromkeys(ids))


def data_fingerprint(root: str | Path) -> str:
    """12 hex digits identifying the content of the data folder `root` (its reader's content files: for the LA
    layout the lists, dataset.json and every listed case)."""
    from sslbench.datasets.errors import DatasetError
    from sslbench.datasets.readers import reader_for

    root = Path(root)
    try:
        files = reader_for(root).content_files(root)
    except DatasetError:  # not a dataset folder: the readers report it; hash what an LA folder would hold
        files = [(name, root / name) for name in LIST_FILES]
    parts = [[name, file_digest(path) if path is not None else "unsafe-id"] for name, path in files]
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:12]
