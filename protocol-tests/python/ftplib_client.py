#!/usr/bin/env python3
"""Drives a ferry server with Python's standard ftplib, one scenario per run.

Usage: ftplib_client.py SCENARIO PORT USER PASSWORD WORKDIR

The Rust test prepares WORKDIR and the server's files, runs one scenario, and checks the files on
disk afterwards; the scenario itself asserts on every reply it gets. Any failure exits non-zero
with a traceback.
"""

import ftplib
import io
import os
import sys

HOST = "127.0.0.1"


def connect(port, user, password):
    ftp = ftplib.FTP()
    ftp.connect(HOST, port, timeout=60)
    ftp.login(user, password)
    ftp.voidcmd("TYPE I")
    return ftp


def expect_error(code, call, *args, **kwargs):
    """Runs `call`, which must fail with an FTP error reply starting with `code`."""
    try:
        call(*args, **kwargs)
    except ftplib.Error as error:
        assert str(error).startswith(code), f"expected {code}, got {error}"
        return str(error)
    raise AssertionError(f"expected a {code} reply, the call succeeded")


def mirror_down(ftp, workdir):
    """Copies the server's tree under /site into WORKDIR/down, walking it with MLSD, and checks
    that SIZE agrees with every file it downloaded."""

    def walk(remote, local):
        os.makedirs(local, exist_ok=True)
        for name, facts in ftp.mlsd(remote, facts=["type", "size"]):
            if facts["type"] in ("cdir", "pdir"):
                continue
            path = f"{remote}/{name}"
            if facts["type"] == "dir":
                walk(path, os.path.join(local, name))
                continue
            out = io.BytesIO()
            ftp.retrbinary(f"RETR {path}", out.write)
            assert len(out.getvalue()) == int(facts["size"]), (path, facts)
            assert ftp.size(path) == int(facts["size"]), path
            with open(os.path.join(local, name), "wb") as file:
                file.write(out.getvalue())

    walk("/site", os.path.join(workdir, "down"))


def transfers(ftp, workdir):
    """Uploads every file of WORKDIR/up and downloads it back into WORKDIR/down, first in passive
    mode (PASV), then in active mode (PORT)."""
    names = sorted(os.listdir(os.path.join(workdir, "up")))
    os.makedirs(os.path.join(workdir, "down"), exist_ok=True)
    for passive in (True, False):
        ftp.set_pasv(passive)
        prefix = "passive-" if passive else "active-"
        for name in names:
            with open(os.path.join(workdir, "up", name), "rb") as source:
                reply = ftp.storbinary(f"STOR {prefix}{name}", source)
            assert reply.startswith("226"), reply
            with open(os.path.join(workdir, "down", prefix + name), "wb") as target:
                reply = ftp.retrbinary(f"RETR {prefix}{name}", target.write)
            assert reply.startswith("226"), reply
            size = os.path.getsize(os.path.join(workdir, "up", name))
            assert ftp.size(f"{prefix}{name}") == size


def resume(ftp, workdir):
    """REST both ways: finishes a partial download (RETR with rest=) and a partial upload (STOR
    with rest=, the server already holding the first half)."""
    partial = os.path.join(workdir, "partial-download.bin")
    offset = os.path.getsize(partial)
    with open(partial, "ab") as target:
        reply = ftp.retrbinary("RETR whole.bin", target.write, rest=offset)
    assert reply.startswith("226"), reply

    source_path = os.path.join(workdir, "upload-source.bin")
    offset = ftp.size("half-uploaded.bin")
    assert 0 < offset < os.path.getsize(source_path), offset
    with open(source_path, "rb") as source:
        source.seek(offset)
        reply = ftp.storbinary("STOR half-uploaded.bin", source, rest=offset)
    assert reply.startswith("226"), reply
    assert ftp.size("half-uploaded.bin") == os.path.getsize(source_path)


def append(ftp, workdir):
    """APPE twice: the server's file is the concatenation."""
    for part in ("part1.bin", "part2.bin"):
        with open(os.path.join(workdir, part), "rb") as source:
            reply = ftp.storbinary("APPE appended.bin", source)
        assert reply.startswith("226"), reply


def files(ftp, workdir):
    """Directories, rename, delete, SIZE/MDTM and the three listings, parsed by ftplib."""
    assert ftp.pwd() == "/"
    assert ftp.mkd("dir with space") == "/dir with space"
    ftp.mkd("données ünïcode 日本")
    ftp.cwd("dir with space")
    assert ftp.pwd() == "/dir with space"
    ftp.storbinary("STOR first.txt", io.BytesIO(b"first file\n"))
    ftp.rename("first.txt", "renamed.txt")
    ftp.cwd("..")
    assert ftp.pwd() == "/"
    ftp.rename("/dir with space/renamed.txt", "/données ünïcode 日本/moved.txt")
    expect_error("550", ftp.size, "/dir with space/renamed.txt")
    ftp.rmd("dir with space")
    expect_error("550", ftp.rmd, "dir with space")

    assert ftp.size("/données ünïcode 日本/moved.txt") == len(b"first file\n")
    mdtm = ftp.voidcmd("MDTM /données ünïcode 日本/moved.txt")
    assert mdtm.startswith("213 ") and len(mdtm.split()[1]) >= 14, mdtm

    ftp.storbinary("STOR top.bin", io.BytesIO(b"x" * 1234))
    names = sorted(ftp.nlst())
    assert "top.bin" in names and "données ünïcode 日本" in names, names

    lines = []
    ftp.dir(lines.append)
    top = [line for line in lines if line.endswith(" top.bin")]
    assert len(top) == 1 and top[0].startswith("-"), lines
    assert " 1234 " in top[0], top
    directory = [line for line in lines if line.endswith(" données ünïcode 日本")]
    assert len(directory) == 1 and directory[0].startswith("d"), lines

    facts = dict(ftp.mlsd(facts=["type", "size", "modify", "perm", "unique"]))
    assert facts["top.bin"]["type"] == "file", facts
    assert facts["top.bin"]["size"] == "1234", facts
    assert len(facts["top.bin"]["modify"]) >= 14, facts
    assert "r" in facts["top.bin"]["perm"], facts
    assert facts["données ünïcode 日本"]["type"] == "dir", facts
    inner = dict(ftp.mlsd("données ünïcode 日本"))
    assert inner["moved.txt"]["size"] == str(len(b"first file\n")), inner

    ftp.delete("top.bin")
    expect_error("550", ftp.delete, "top.bin")
    ftp.delete("/données ünïcode 日本/moved.txt")
    ftp.rmd("données ünïcode 日本")
    assert ftp.nlst() == [], ftp.nlst()


def traversal(ftp, workdir):
    """Paths that try to climb out of the home stay inside it."""
    ftp.cwd("..")
    assert ftp.pwd() == "/"
    ftp.cwd("/..")
    assert ftp.pwd() == "/"
    expect_error("550", ftp.cwd, "../../etc")
    expect_error("550", ftp.retrbinary, "RETR ../../etc/passwd", lambda _: None)
    expect_error("550", ftp.retrbinary, "RETR /etc/passwd", lambda _: None)
    expect_error("550", ftp.size, "/../../../../etc/passwd")
    # These resolve to names inside the home.
    ftp.storbinary("STOR ../../escape-relative.txt", io.BytesIO(b"relative"))
    ftp.storbinary("STOR /../escape-absolute.txt", io.BytesIO(b"absolute"))
    expect_error("550", ftp.storbinary, "STOR /tmp/escape-tmp.txt", io.BytesIO(b"tmp"))
    expect_error("550", ftp.mkd, "../../../escape-dir/inner")
    names = sorted(ftp.nlst("/"))
    assert names == ["escape-absolute.txt", "escape-relative.txt"], names


def abort(ftp, workdir):
    """ABOR during a download (ftplib sends it as TCP urgent data), then the session goes on."""
    conn = ftp.transfercmd("RETR big.bin")
    received = 0
    while received < 256 * 1024:
        chunk = conn.recv(64 * 1024)
        assert chunk, "the download ended before ABOR"
        received += len(chunk)
    reply = ftp.abort()
    assert reply[:3] in ("426", "225", "226"), reply
    if reply.startswith("426"):
        # RFC 959 §4.1.3: the 426 for the transfer, then the 226 for ABOR itself.
        final = ftp.getresp()
        assert final.startswith("226"), final
    conn.close()
    assert ftp.voidcmd("NOOP").startswith("200")
    # ABOR with no transfer running is answered, not refused.
    reply = ftp.abort()
    assert reply[:3] in ("225", "226"), reply
    out = io.BytesIO()
    ftp.retrbinary("RETR small.txt", out.write)
    assert out.getvalue() == b"still usable\n", out.getvalue()
    assert ftp.pwd() == "/"

    # A NOOP sent while a transfer runs is answered after the transfer's 226, never between
    # the 150 and the 226 (a client reads replies in order).
    conn = ftp.transfercmd("RETR big.bin")
    ftp.putcmd("NOOP")
    received = 0
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        received += len(chunk)
    conn.close()
    assert received == 32 << 20, received
    done = ftp.getresp()
    assert done.startswith("226"), done
    noop = ftp.getresp()
    assert noop.startswith("200"), noop


def small_file(index, version):
    """4 KiB that differ from file to file and from version to version."""
    return bytes((index * 7 + version * 13 + i) % 251 for i in range(4096))


def overwrites(ftp, workdir):
    """100 small files uploaded, then each uploaded again over itself and read back at once: the
    RETR that follows a STOR sees the new content."""
    for index in range(100):
        ftp.storbinary(f"STOR over{index:03d}.bin", io.BytesIO(small_file(index, 1)))
    for index in range(100):
        ftp.storbinary(f"STOR over{index:03d}.bin", io.BytesIO(small_file(index, 2)))
        out = io.BytesIO()
        ftp.retrbinary(f"RETR over{index:03d}.bin", out.write)
        assert out.getvalue() == small_file(index, 2), index


def overwrites_seen_elsewhere(ftp, workdir, port, user, password):
    """Each file uploaded again over itself on one connection and read back at once on another
    connection of the same account, as clients with several connections (FileZilla, rclone) do:
    the other connection sees the new content too."""
    other = connect(port, user, password)
    for index in range(100):
        ftp.storbinary(f"STOR seen{index:03d}.bin", io.BytesIO(small_file(index, 1)))
    for index in range(100):
        ftp.storbinary(f"STOR seen{index:03d}.bin", io.BytesIO(small_file(index, 2)))
        out = io.BytesIO()
        other.retrbinary(f"RETR seen{index:03d}.bin", out.write)
        assert out.getvalue() == small_file(index, 2), index
    assert other.quit().startswith("221")


def overwrite_then_leave(ftp, workdir):
    """Replaces a file, reads the 226, and drops the connection without QUIT (as ftplib's close()
    does)."""
    ftp.storbinary("STOR left.bin", io.BytesIO(small_file(1, 2)))


def main():
    scenario, port, user, password, workdir = sys.argv[1:6]
    port = int(port)
    if scenario == "wrong_password":
        ftp = ftplib.FTP()
        ftp.connect(HOST, port, timeout=60)
        expect_error("530", ftp.login, user, password + "-wrong")
        ftp.close()
        return
    if scenario == "read_only":
        ftp = connect(port, user, password)
        expect_error("550", ftp.storbinary, "STOR refused.txt", io.BytesIO(b"no"))
        expect_error("550", ftp.mkd, "refused-dir")
        expect_error("550", ftp.delete, "readable.txt")
        out = io.BytesIO()
        ftp.retrbinary("RETR readable.txt", out.write)
        assert out.getvalue() == b"readable\n", out.getvalue()
        ftp.quit()
        return
    scenarios = {
        "mirror_down": mirror_down,
        "transfers": transfers,
        "resume": resume,
        "append": append,
        "files": files,
        "traversal": traversal,
        "abort": abort,
        "overwrites": overwrites,
    }
    if scenario == "overwrite_then_leave":
        ftp = connect(port, user, password)
        overwrite_then_leave(ftp, workdir)
        ftp.close()
        print(f"{scenario}: ok")
        return
    ftp = connect(port, user, password)
    if scenario == "overwrites_seen_elsewhere":
        overwrites_seen_elsewhere(ftp, workdir, port, user, password)
    else:
        scenarios[scenario](ftp, workdir)
    assert ftp.quit().startswith("221")
    print(f"{scenario}: ok")


if __name__ == "__main__":
    main()
