"""TLS server names (SNI) against a server with a virtual host called `localhost`.

Usage: tls_host_session.py PORT IMPLICIT_PORT HOST_CA DEFAULT_CA USER PASSWORD

Each line printed is one step's outcome:
  explicit-sni ...   ftplib FTP_TLS to "localhost" (SNI localhost), verifying HOST_CA
  implicit-sni ...   a raw TLS socket to the implicit port with SNI localhost, verifying HOST_CA
  explicit-ip ...    ftplib FTP_TLS to 127.0.0.1 (no SNI), verifying DEFAULT_CA
A certificate the CA given does not verify makes the step print `error ...`.
"""

import ftplib
import io
import socket
import ssl
import sys


def context(cafile, check_hostname=True):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = check_hostname
    return ctx


def explicit(host, port, cafile, user, password, label):
    ftp = ftplib.FTP_TLS(context=context(cafile), timeout=30)
    try:
        ftp.connect(host, port)
        ftp.auth()
        for command in ("HOST www.example.com", "HOST " + host):
            try:
                print(label, command, "->", ftp.sendcmd(command), flush=True)
            except ftplib.all_errors as error:
                print(label, command, "->", error, flush=True)
        ftp.login(user, password)
        ftp.prot_p()
        out = io.BytesIO()
        ftp.retrbinary("RETR where.txt", out.write)
        print(label, "where.txt", out.getvalue().decode(), flush=True)
        ftp.quit()
    except (ssl.SSLError, ftplib.all_errors) as error:
        print(label, "error", error, flush=True)


def implicit(port, cafile, user, password):
    raw = socket.create_connection(("localhost", port), timeout=30)
    try:
        tls = context(cafile).wrap_socket(raw, server_hostname="localhost")
    except ssl.SSLError as error:
        print("implicit-sni error", error, flush=True)
        return
    reader = tls.makefile("rb")

    def reply():
        line = reader.readline().decode().rstrip("\r\n")
        while len(line) > 3 and line[3] == "-":
            line = reader.readline().decode().rstrip("\r\n")
        return line

    def send(command):
        tls.sendall((command + "\r\n").encode())
        return reply()

    print("implicit-sni greeting", reply()[:3], flush=True)
    send("USER " + user)
    print("implicit-sni login", send("PASS " + password)[:3], flush=True)
    print("implicit-sni size", send("SIZE where.txt"), flush=True)
    send("QUIT")
    tls.close()


def main():
    port, implicit_port, host_ca, default_ca, user, password = sys.argv[1:7]
    explicit("localhost", int(port), host_ca, user, password, "explicit-sni")
    implicit(int(implicit_port), host_ca, user, password)
    explicit("127.0.0.1", int(port), default_ca, user, password, "explicit-ip")


if __name__ == "__main__":
    main()
