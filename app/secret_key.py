"""The key that signs session cookies: STOCKIT_SECRET_KEY, or one generated once under STOCKIT_HOME (0600)."""
from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

logger = logging.getLogger(__name__)
FILE_NAME = "secret_key"


def session_secret(configured: str, home: Path) -> str:
    """``configured`` when set; else the key in ``home/secret_key``, created on first use.

    Several web processes may start at once: the key is written to a private temporary file and
    linked into place, so exactly one key wins and nobody reads a half-written file.
    """
    if configured:
        return configured
    home.mkdir(parents=True, exist_ok=True)
    path = home / FILE_NAME
    if not path.exists():
        tmp = home / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(tmp, path)
                logger.info("generated the session signing key %s", path)
            except FileExistsError:
                pass  # another process was first: use its key
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); made it 0600", path, mode)
        path.chmod(0o600)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable key (under 32 characters); delete it to make a new one")
    return key
