"""A pyftpdlib server for the client wire tests: a second, independent FTP implementation.

Prints "READY <port>" on stdout once it listens, then serves until killed. Every command and
reply goes to --log, so tests can check what the client actually sent.

    pyftpdlib_server.py --home DIR --user NAME --password PW [--port N]
        [--tls CERT KEY] [--without CMD]... [--refuse CMD]... [--max-cons-per-ip N]
        [--masquerade ADDR] [--log FILE] [--no-rename-over] [--no-dir-rename]

--without CMD removes a command altogether (and from FEAT); --refuse CMD keeps it in FEAT but
answers "502" to it, as servers behind some firewalls do with EPSV. --no-rename-over refuses to
rename onto an existing file, as Windows servers (IIS, FileZilla Server) do; --no-dir-rename
refuses to rename directories, as shared hosts that protect the web root do.
"""

import argparse
import errno
import logging
import os
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


class NoRenameOverFS(AbstractedFS):
    """Renames like Windows: never onto an existing file."""

    def rename(self, src, dst):
        if os.path.exists(dst):
            raise OSError(errno.EEXIST, "Cannot create a file when that file already exists")
        super().rename(src, dst)


class NoDirRenameFS(AbstractedFS):
    """Renames files only: a directory stays where it is, as on hosts that protect the web root."""

    def rename(self, src, dst):
        if os.path.isdir(src):
            raise PermissionError(errno.EPERM, "Directories cannot be renamed here")
        super().rename(src, dst)


def refusing(command):
    def refuse(self, line):
        self.respond(f"502 {command} is switched off on this server.")

    return refuse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--without", action="append", default=[])
    parser.add_argument("--refuse", action="append", default=[])
    parser.add_argument("--max-cons-per-ip", type=int, default=0)
    parser.add_argument("--masquerade")
    parser.add_argument("--log")
    parser.add_argument("--no-rename-over", action="store_true")
    parser.add_argument("--no-dir-rename", action="store_true")
    args = parser.parse_args()

    if args.log:
        logging.basicConfig(
            filename=args.log,
            level=logging.DEBUG,
            format="%(message)s",
        )

    if args.tls:
        from pyftpdlib.handlers import TLS_FTPHandler

        base = TLS_FTPHandler
    else:
        base = FTPHandler

    attributes = {
        "proto_cmds": {
            name: value
            for name, value in base.proto_cmds.items()
            if name not in args.without
        },
        "passive_ports": None,
        "permit_foreign_addresses": False,
    }
    for command in args.refuse:
        attributes["ftp_" + command] = refusing(command)
    if args.masquerade:
        attributes["masquerade_address"] = args.masquerade
    if args.no_rename_over:
        attributes["abstracted_fs"] = NoRenameOverFS
    if args.no_dir_rename:
        attributes["abstracted_fs"] = NoDirRenameFS
    if args.tls:
        attributes["certfile"] = args.tls[0]
        attributes["keyfile"] = args.tls[1]
        attributes["tls_control_required"] = True
        attributes["tls_data_required"] = True
    handler = type("TestHandler", (base,), attributes)

    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, args.password, args.home, perm="elradfmwMT")
    handler.authorizer = authorizer

    server = FTPServer(("127.0.0.1", args.port), handler)
    server.max_cons_per_ip = args.max_cons_per_ip
    print("READY", server.address[1], flush=True)
    try:
        server.serve_forever(handle_exit=False)
    finally:
        server.close_all()


if __name__ == "__main__":
    sys.exit(main())
