"""One plain FTP session with Python's ftplib that sends raw commands and prints the replies.

Usage: quote_session.py PORT USER PASSWORD COMMAND...

Logs in, sends each COMMAND with ftplib's sendcmd and prints its reply on one line (the last line
of a multi-line reply), so a caller can check what a real client library receives. A refused
command prints ftplib's error text, which starts with the reply code as well.
"""

import ftplib
import sys


def main():
    port, user, password = sys.argv[1:4]
    ftp = ftplib.FTP(timeout=30)
    ftp.connect("127.0.0.1", int(port))
    ftp.login(user, password)
    for command in sys.argv[4:]:
        try:
            reply = ftp.sendcmd(command)
        except ftplib.all_errors as error:
            reply = str(error)
        print(reply.splitlines()[-1], flush=True)
    ftp.quit()


if __name__ == "__main__":
    main()
