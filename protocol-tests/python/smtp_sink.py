"""An SMTP server for the deploy notification tests: aiosmtpd on 127.0.0.1.

Prints "READY <port>" on stdout once it listens, then accepts every message and writes it to
DIR/NNNN.json: the envelope (sender, recipients), the headers the tests check, the text and
HTML parts as Python's email package decodes them, and the raw message. Each file appears
whole (written beside, then renamed). Stops when its standard input closes or when killed.

    smtp_sink.py --dir DIR [--port N] [--tls CERT KEY [--implicit]] [--auth USER PASSWORD]

--tls offers STARTTLS with that certificate and refuses mail until the client has used it
(with --implicit: TLS from the first byte instead); --auth then also requires a login with
that user and password (AUTH PLAIN or LOGIN).
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            # STARTTLS sets session.ssl; an implicit TLS connection has an SSL transport.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("sslcontext") is not None,
            "auth_user": session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword)
            else None,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "content_type": message.get_content_type(),
            "parts": [part.get_content_type() for part in message.iter_parts()]
            if message.is_multipart()
            else [],
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
            "raw": raw.decode("utf-8", "replace"),
        }
        self.count += 1
        path = os.path.join(self.directory, f"{self.count:04}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    return check


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


async def serve(args):
    handler = Sink(args.dir)
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls[0], args.tls[1])
    auth = {}
    if args.auth:
        auth = {
            "authenticator": authenticator(*args.auth),
            "auth_required": True,
            # Implicit TLS is TLS too, though aiosmtpd only counts STARTTLS.
            "auth_require_tls": not args.implicit,
        }
    starttls = context if not args.implicit else None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="sink.test",
            tls_context=starttls,
            require_starttls=starttls is not None,
            **auth,
        ),
        host="127.0.0.1",
        port=args.port,
        ssl=context if args.implicit else None,
    )
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit", action="store_true")
    parser.add_argument("--auth", nargs=2, metavar=("USER", "PASSWORD"))
    args = parser.parse_args()
    # aiosmtpd warns about its own use of a deprecated attribute on every login.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
