"""One login with Python's ftplib from a chosen local address, then QUIT.

Usage: login_session.py PORT SOURCE_ADDRESS USER PASSWORD

Prints `login <reply>` with the whole 230 reply (its lines joined by `|`), or `refused <error>`
when the server refused the login; then `quit <reply>` with the whole 221 reply.
"""

import ftplib
import sys


def main():
    port, source, user, password = sys.argv[1:5]
    ftp = ftplib.FTP(timeout=30, source_address=(source, 0))
    ftp.connect("127.0.0.1", int(port))
    try:
        reply = ftp.login(user, password)
        print("login " + "|".join(reply.splitlines()), flush=True)
    except ftplib.error_perm as error:
        print("refused " + str(error), flush=True)
    reply = ftp.quit()
    print("quit " + "|".join(reply.splitlines()), flush=True)


if __name__ == "__main__":
    main()
