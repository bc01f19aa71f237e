"""An SMTP server for the deploy notification tests: aiosmtpd on 127.0.0.1.

Prints "READY <port>" on stdout once it listens, then accepts every message and writes it to
DIR/NNNN.json: the envelope (sender, recipients), the headers the tests check, the text and
HTML parts as Python's email package decodes them, and the raw message. Each file appears
whole (written beside, then renamed). Stops when its standard input closes or when killed.

    smtp_sink.py --dir DIR [--port N] [--tls CERT KEY]

--tls offers STARTTLS with that certificate and refuses mail until the client has used it.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP


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
            "tls": session.ssl is not None,
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


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


async def serve(args):
    handler = Sink(args.dir)
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls[0], args.tls[1])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="sink.test",
            tls_context=context,
            require_starttls=context is not None,
        ),
        host="127.0.0.1",
        port=args.port,
    )
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
