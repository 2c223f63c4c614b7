"""The people who may sign in (``ATTN_AUTH=basic``): a file of ``name:hash`` lines, and a small command.

Passwords are stored as werkzeug's salted scrypt hashes (``werkzeug.security``), never in clear::

    python -m services.users --file /etc/attention-explorer/users add alice     # asks for the password
    python -m services.users --file /etc/attention-explorer/users remove alice
    python -m services.users --file /etc/attention-explorer/users list

(``--file`` defaults to ``ATTN_USERS_FILE``; ``--password-stdin`` reads the password from standard input
for scripts. Installed from the wheel: ``python -m attention_explorer.services.users``.) The file is
written atomically with mode 0600; the running app reads it again when it changes, so adding or
removing someone needs no restart.

Checking a scrypt hash costs tens of milliseconds and 32 MB on purpose, and a browser sends the
password with every request: ``UserStore`` remembers which (name, password, hash) it has already
accepted, as an HMAC under a key that lives only in this process, so each person pays once per
process; a changed or removed entry no longer matches.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import os
import re
import secrets
import sys
import tempfile
import threading
from collections import OrderedDict

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
MIN_PASSWORD_CHARS = 8
_REMEMBERED = 4096


class UsersFileError(ValueError):
    """The users file or a name in it is not usable; the message says why."""


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise UsersFileError("A user name is 1 to 64 letters, digits or . _ @ + - (starting with a letter or digit).")
    return name


def read_users(path: str) -> dict[str, str]:
    """``{name: hash}`` from the file (blank lines and ``#`` comments skipped). A missing file is empty."""
    users: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return users
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not NAME.match(name) or "$" not in hashed:
            raise UsersFileError(f"{path}, line {number}: expected name:hash (made by `python -m services.users add`).")
        users[name] = hashed
    return users


def write_users(path: str, users: dict[str, str]) -> None:
    """Replaces the file at once (a temporary file in the same folder, mode 0600, then renamed)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".users-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("# Attention Explorer users: name:hash (python -m services.users add NAME)\n")
            for name in sorted(users):
                handle.write(f"{name}:{users[name]}\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def add_user(path: str, name: str, password: str) -> bool:
    """Adds ``name`` or changes their password. True when the name is new."""
    from werkzeug.security import generate_password_hash

    check_name(name)
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsersFileError(f"The password must have at least {MIN_PASSWORD_CHARS} characters.")
    users = read_users(path)
    new = name not in users
    users[name] = generate_password_hash(password)
    write_users(path, users)
    return new


def remove_user(path: str, name: str) -> bool:
    """Removes ``name``. False when there was no such user."""
    users = read_users(path)
    if users.pop(name, None) is None:
        return False
    write_users(path, users)
    return True


class UserStore:
    """Checks names and passwords against the users file, read again whenever it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._users: dict[str, str] = {}
        self._key = secrets.token_bytes(32)
        self._accepted: OrderedDict[bytes, None] = OrderedDict()
        self._dummy: str | None = None
        self.error: str | None = None

    def users(self) -> dict[str, str]:
        try:
            info = os.stat(self.path)
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._users = read_users(self.path) if stamp is not None else {}
                    self.error = None if stamp is not None else "the users file does not exist"
                except (OSError, UnicodeDecodeError, UsersFileError) as exc:
                    self._users = {}  # fail closed: nobody signs in with a file we cannot read
                    self.error = str(exc)
                self._stamp = stamp
            return self._users

    def _token(self, name: str, password: str, hashed: str) -> bytes:
        return hmac.new(self._key, "\0".join((name, password, hashed)).encode("utf-8", "surrogatepass"),
                        hashlib.sha256).digest()

    def remembered(self, name: str, password: str) -> bool:
        """Whether this process already accepted ``name`` with ``password`` (and the entry has not
        changed since): no hashing, so it costs nothing and no failure count applies to it."""
        hashed = self.users().get(name)
        if hashed is None:
            return False
        return self._seen(self._token(name, password, hashed))

    def _seen(self, token: bytes) -> bool:
        """Whether ``token`` (a name, password and entry) was accepted before; if so it is kept longest."""
        with self._lock:
            if token in self._accepted:
                self._accepted.move_to_end(token)
                return True
        return False

    def verify(self, name: str, password: str) -> bool:
        from werkzeug.security import check_password_hash, generate_password_hash

        hashed = self.users().get(name)
        if hashed is None:
            if self._dummy is None:
                self._dummy = generate_password_hash(secrets.token_hex(8))
            check_password_hash(self._dummy, password)  # the same cost as a real name
            return False
        token = self._token(name, password, hashed)
        if self._seen(token):
            return True
        if not check_password_hash(hashed, password):
            return False
        with self._lock:
            self._accepted[token] = None
            while len(self._accepted) > _REMEMBERED:
                self._accepted.popitem(last=False)
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.users",
                                     description="Add, remove or list the people who may sign in (ATTN_AUTH=basic).")
    parser.add_argument("--file", default=os.environ.get("ATTN_USERS_FILE", ""),
                        help="the users file (default: $ATTN_USERS_FILE)")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add a user, or change their password")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    remove = sub.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    sub.add_parser("list", help="list the users")
    args = parser.parse_args(argv)
    if not args.file:
        parser.error("say which users file: --file PATH or ATTN_USERS_FILE")
    try:
        if args.command == "list":
            for name in sorted(read_users(args.file)):
                print(name)
            return 0
        if args.command == "remove":
            if remove_user(args.file, args.name):
                print(f"removed {args.name}")
                return 0
            print(f"no user {args.name} in {args.file}", file=sys.stderr)
            return 1
        check_name(args.name)
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass(f"Password for {args.name}: ")
            if getpass.getpass("Again: ") != password:
                print("the passwords differ; nothing changed", file=sys.stderr)
                return 1
        new = add_user(args.file, args.name, password)
        print(f"{'added' if new else 'changed the password of'} {args.name}")
        return 0
    except (UsersFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
