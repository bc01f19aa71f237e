"""One FTPS session with Python's ftplib.FTP_TLS and PROT P: upload, list, download.

Usage: ftps_session.py PORT CAFILE USER PASSWORD UPLOAD_FROM REMOTE_NAME DOWNLOAD_TO

Prints one line per step (`login ok`, `upload ok`, `list NAME...`, `download ok`), or on an FTP
error `error CODE MESSAGE` and exits 2, so the caller can check which step the server refused. When
the server closes a refused data connection under ftplib's feet (a broken pipe mid-upload), the
server's reply to the transfer is read and printed instead.
ftplib never resumes the control connection's TLS session on data connections.
"""

import ftplib
import ssl
import sys


def main():
    port, cafile, user, password, upload_from, remote, download_to = sys.argv[1:8]
    context = ssl.create_default_context(cafile=cafile)
    ftp = ftplib.FTP_TLS(context=context, timeout=30)
    try:
        ftp.connect("127.0.0.1", int(port))
        ftp.auth()
        ftp.login(user, password)
        print("login ok", flush=True)
        ftp.prot_p()
        with open(upload_from, "rb") as source:
            ftp.storbinary("STOR " + remote, source)
        print("upload ok", flush=True)
        print("list " + " ".join(sorted(ftp.nlst())), flush=True)
        with open(download_to, "wb") as sink:
            ftp.retrbinary("RETR " + remote, sink.write)
        print("download ok", flush=True)
        ftp.quit()
    except ftplib.Error as error:
        print("error " + str(error), flush=True)
        sys.exit(2)
    except OSError as error:
        print("data connection failed: " + str(error), flush=True)
        try:
            ftp.voidresp()
        except ftplib.Error as reply:
            print("error " + str(reply), flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
