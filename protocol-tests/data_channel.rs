//! The data channel by hand: the passive port pool and its leases, data-connection theft, the
//! masquerade address, EPSV, active mode and FTP bounce, ABOR in the middle of a transfer.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use ferry::server::{Masquerade, PortRanges};

use crate::dialogue::{
    Dialogue, connect_from, data_stream, epsv_port, eventually, free_port_range,
};
use crate::support::*;

fn ports_of(ranges: &PortRanges) -> Vec<u16> {
    let text = ranges.to_string();
    let (low, high) = text.split_once('-').unwrap();
    (low.parse().unwrap()..=high.parse().unwrap()).collect()
}

#[test]
fn an_exhausted_pool_answers_425_and_leases_come_back() {
    let ranges = free_port_range(2);
    let ports = ports_of(&ranges);
    let server = TestServer::start_with(|config| config.passive_ports = ranges.clone());
    std::fs::write(server.home().join("f"), b"data").unwrap();
    let mut a = Dialogue::login(&server);
    let mut b = Dialogue::login(&server);
    let mut c = Dialogue::login(&server);
    let first = a.pasv();
    let second = b.pasv();
    assert!(ports.contains(&first.port()) && ports.contains(&second.port()));
    assert_ne!(first.port(), second.port());
    let refused = c.expect("PASV", 425);
    assert!(
        refused.text().contains("passive ports are in use"),
        "{refused:?}"
    );
    c.expect("EPSV", 425);
    // A second PASV in one session gives its old port back before taking one.
    let again = a.pasv();
    assert!(ports.contains(&again.port()));
    c.expect("PASV", 425);

    // Returned when the data connection arrives.
    let mut data = data_stream(TcpStream::connect(again).unwrap());
    a.expect("RETR f", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(a.reply().code, 226);
    assert_eq!(got, b"data");
    let port = c.pasv().port();
    assert!(ports.contains(&port), "a port outside the range: {port}");
    a.expect("PASV", 425);

    // Returned when the session ends.
    c.expect("QUIT", 221);
    drop(c);
    eventually(Duration::from_secs(10), || {
        let reply = a.command("PASV");
        (reply.code == 227).then_some(())
    });
}

#[test]
fn a_passive_port_nobody_connects_to_is_returned_after_the_accept_timeout() {
    let ranges = free_port_range(1);
    let server = TestServer::start_with(|config| {
        config.passive_ports = ranges.clone();
        config.timeouts.data_accept = Duration::from_secs(2);
    });
    std::fs::write(server.home().join("f"), b"data").unwrap();
    let mut a = Dialogue::login(&server);
    let mut b = Dialogue::login(&server);
    // The transfer waits for a connection that never comes.
    a.pasv();
    a.expect("RETR f", 150);
    let failed = a.reply();
    assert_eq!(failed.code, 425, "{failed:?}");
    eventually(Duration::from_secs(10), || {
        (b.command("PASV").code == 227).then_some(())
    });
    b.expect("ABOR", 226);
    // A PASV without any transfer command gives its port back after the timeout as well (the
    // pool has one port, so B gets it only once A's lease has expired).
    a.pasv();
    eventually(Duration::from_secs(20), || {
        (b.command("PASV").code == 227).then_some(())
    });
    a.expect("LIST", 425);
    a.expect("NOOP", 200);
}

#[test]
fn a_data_connection_from_another_address_is_refused() {
    let server = TestServer::start();
    let content = pattern(50_000, 3);
    std::fs::write(server.home().join("f"), &content).unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE I", 200);
    let port = ftp.pasv();
    // 127.0.0.2 is a local address on Linux, but not the control connection's (127.0.0.1).
    let mut thief = data_stream(connect_from(port, "127.0.0.2".parse().unwrap()));
    ftp.send("RETR f");
    let mut stolen = Vec::new();
    let _ = thief.read_to_end(&mut stolen);
    assert!(stolen.is_empty(), "the thief got {} bytes", stolen.len());
    let mut data = data_stream(TcpStream::connect(port).unwrap());
    assert_eq!(ftp.reply().code, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(sha256(&got), sha256(&content));
}

#[test]
fn pasv_names_the_masquerade_address() {
    let server = TestServer::start_with(|config| {
        config.masquerade = Masquerade::new(Some(Ipv4Addr::new(203, 0, 113, 10)), Vec::new());
    });
    std::fs::write(server.home().join("f"), b"behind nat").unwrap();
    let mut ftp = Dialogue::login(&server);
    let reply = ftp.expect("PASV", 227);
    assert!(reply.lines[0].contains("(203,0,113,10,"), "{reply:?}");
    // The port is real: connect to it where the server actually is.
    let port = ferry::protocol::address::parse_pasv_reply(&reply.lines[0][4..])
        .unwrap()
        .port();
    let mut data = data_stream(TcpStream::connect(("127.0.0.1", port)).unwrap());
    ftp.expect("RETR f", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(got, b"behind nat");
    // EPSV carries no address, so the masquerade does not matter there.
    let epsv = ftp.expect("EPSV", 229);
    assert!(!epsv.text().contains("203"), "{epsv:?}");
}

#[test]
fn pasv_address_follows_the_per_network_map() {
    let lan = TestServer::start_with(|config| {
        let map = Masquerade::parse_map("127.0.0.0/8=10.0.0.5,10.0.0.0/8=10.9.9.9").unwrap();
        config.masquerade = Masquerade::new(Some(Ipv4Addr::new(203, 0, 113, 10)), map);
    });
    let mut ftp = Dialogue::login(&lan);
    let reply = ftp.expect("PASV", 227);
    assert!(reply.lines[0].contains("(10,0,0,5,"), "{reply:?}");

    let internet = TestServer::start_with(|config| {
        let map = Masquerade::parse_map("10.0.0.0/8=10.0.0.5,0.0.0.0/0=203.0.113.10").unwrap();
        config.masquerade = Masquerade::new(None, map);
    });
    let mut ftp = Dialogue::login(&internet);
    let reply = ftp.expect("PASV", 227);
    assert!(reply.lines[0].contains("(203,0,113,10,"), "{reply:?}");

    let unmasked = TestServer::start();
    let mut ftp = Dialogue::login(&unmasked);
    let reply = ftp.expect("PASV", 227);
    assert!(reply.lines[0].contains("(127,0,0,1,"), "{reply:?}");
}

#[test]
fn epsv_answers_with_the_port_only_and_epsv_all_locks_out_the_rest() {
    let server = TestServer::start();
    std::fs::write(server.home().join("f"), b"extended").unwrap();
    let mut ftp = Dialogue::login(&server);
    let reply = ftp.expect("EPSV", 229);
    let port = epsv_port(&reply);
    assert_eq!(
        reply.lines[0],
        format!("229 Entering Extended Passive Mode (|||{port}|)")
    );
    let mut data = data_stream(TcpStream::connect(("127.0.0.1", port)).unwrap());
    ftp.expect("RETR f", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(got, b"extended");
    ftp.expect("EPSV 1", 229);
    let wrong = ftp.expect("EPSV 2", 522);
    assert!(wrong.text().contains("(1)"), "{wrong:?}");
    ftp.expect("EPSV 3", 522);

    ftp.expect("EPSV ALL", 200);
    ftp.expect("PASV", 503);
    ftp.expect("PORT 127,0,0,1,200,10", 503);
    ftp.expect("EPRT |1|127.0.0.1|51210|", 503);
    let port = ftp.epsv();
    let mut data = data_stream(TcpStream::connect(("127.0.0.1", port)).unwrap());
    ftp.expect("RETR f", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(ftp.reply().code, 226);
    // REIN starts over, EPSV ALL included.
    ftp.expect("REIN", 220);
    ftp.log_in(USER);
    ftp.pasv();
}

#[test]
fn active_mode_connects_back_to_the_client() {
    let server = TestServer::start();
    let content = pattern(200_000, 5);
    std::fs::write(server.home().join("f"), &content).unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE I", 200);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    ftp.expect(
        &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        200,
    );
    ftp.expect("RETR f", 150);
    let (mut data, from) = listener.accept().unwrap();
    assert_eq!(from.ip(), server.addr.ip());
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(sha256(&got), sha256(&content));

    ftp.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 200);
    ftp.expect("STOR back.bin", 150);
    let (mut data, _) = listener.accept().unwrap();
    data.write_all(&content).unwrap();
    drop(data);
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(
        sha256_file(&server.home().join("back.bin")),
        sha256(&content)
    );
}

#[test]
fn active_mode_refuses_third_addresses_and_privileged_ports() {
    let server = TestServer::start();
    std::fs::write(server.home().join("f"), b"x").unwrap();
    // A "victim" on another local address that must never be dialled.
    let victim = TcpListener::bind("127.0.0.2:0").unwrap();
    victim.set_nonblocking(true).unwrap();
    let victim_port = victim.local_addr().unwrap().port();
    let mut ftp = Dialogue::login(&server);
    for line in [
        format!("PORT 127,0,0,2,{},{}", victim_port >> 8, victim_port & 0xff),
        format!("EPRT |1|127.0.0.2|{victim_port}|"),
        "PORT 192,0,2,1,7,208".to_owned(),
        "EPRT |2|::1|2000|".to_owned(),
        "PORT 127,0,0,1,0,25".to_owned(),
        "EPRT |1|127.0.0.1|21|".to_owned(),
        "EPRT |1|127.0.0.1|1023|".to_owned(),
    ] {
        let reply = ftp.expect(&line, 501);
        assert!(
            reply.text().contains("your own address") || reply.text().contains("privileged"),
            "{line}: {reply:?}"
        );
        // Nothing was set up, so nothing is dialled.
        ftp.expect("RETR f", 425);
    }
    assert!(
        victim.accept().is_err(),
        "the server connected to a third party"
    );
    let unsupported = ftp.expect("EPRT |3|127.0.0.1|2000|", 522);
    assert!(unsupported.text().contains("(1,2)"), "{unsupported:?}");

    let passive_only = TestServer::start_with(|config| config.active_mode = false);
    let mut ftp = Dialogue::login(&passive_only);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    ftp.expect(
        &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        502,
    );
    ftp.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 502);
    ftp.pasv();
}

#[test]
fn abor_during_a_transfer_answers_426_then_226_and_the_session_goes_on() {
    let server = TestServer::start();
    // Large enough to fill every socket buffer between us: the transfer is still running at ABOR.
    let big = server.home().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    std::fs::write(server.home().join("small"), b"small").unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE I", 200);
    let mut data = ftp.pasv_connect();
    ftp.expect("RETR big.bin", 150);
    let mut first = vec![0u8; 64 * 1024];
    data.read_exact(&mut first).unwrap();
    let status = ftp.expect("STAT", 213);
    assert!(status.text().contains("in progress"), "{status:?}");
    ftp.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert_eq!(ftp.reply().code, 426);
    assert_eq!(ftp.reply().code, 226);
    // The data connection is closed: reading runs into its end, well short of the file.
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
    assert!(rest.len() < (200 << 20), "{} bytes after ABOR", rest.len());
    ftp.expect("NOOP", 200);
    let (got, done) = ftp.download("RETR small");
    assert_eq!(done.code, 226);
    assert_eq!(got, b"small");

    // ABOR of an upload: the partial upload does not replace the file.
    std::fs::write(server.home().join("keep.bin"), b"good").unwrap();
    let mut data = ftp.pasv_connect();
    ftp.expect("STOR keep.bin", 150);
    data.write_all(&pattern(100_000, 9)).unwrap();
    ftp.send("ABOR");
    assert_eq!(ftp.reply().code, 426);
    assert_eq!(ftp.reply().code, 226);
    drop(data);
    assert_eq!(
        std::fs::read(server.home().join("keep.bin")).unwrap(),
        b"good"
    );
    ftp.expect("PWD", 257);
}

#[test]
fn commands_during_a_transfer_are_answered_after_it_in_order() {
    let server = TestServer::start();
    let content = pattern(8 << 20, 17);
    std::fs::write(server.home().join("big.bin"), &content).unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE I", 200);
    let mut data = ftp.pasv_connect();
    ftp.expect("RETR big.bin", 150);
    let mut got = vec![0u8; 64 * 1024];
    data.read_exact(&mut got).unwrap();
    // As vsftpd does: NOOP, PWD and QUIT wait for the transfer's end, so a client that reads
    // replies in order gets the 226 first; QUIT then closes the session.
    ftp.send("NOOP");
    ftp.send("PWD");
    ftp.send("QUIT");
    data.read_to_end(&mut got).unwrap();
    assert_eq!(sha256(&got), sha256(&content));
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(ftp.reply().code, 200);
    assert_eq!(ftp.reply().code, 257);
    assert_eq!(ftp.reply().code, 221);
    assert!(ftp.is_closed());
}

#[test]
fn abor_while_the_data_connection_is_awaited() {
    let server = TestServer::start();
    std::fs::write(server.home().join("f"), b"x").unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.pasv();
    ftp.expect("RETR f", 150);
    ftp.send("ABOR");
    assert_eq!(ftp.reply().code, 426);
    assert_eq!(ftp.reply().code, 226);
    let (got, done) = ftp.download("RETR f");
    assert_eq!((got.as_slice(), done.code), (&b"x"[..], 226));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = TestServer::start();
    let mut ftp = Dialogue::connect(&server);
    ftp.send_raw(format!("USER {USER}\r\nPASS {PASSWORD}\r\nTYPE I\r\nPWD\r\nNOOP\r\n").as_bytes());
    let codes: Vec<u16> = (0..5).map(|_| ftp.reply().code).collect();
    assert_eq!(codes, [331, 230, 200, 257, 200]);
}

#[test]
fn a_client_killed_mid_upload_leaves_the_old_file_in_place() {
    let server = TestServer::start_with(|config| config.max_connections_per_ip = 1);
    std::fs::write(server.home().join("site.html"), b"the good version").unwrap();
    // The server tells a finished upload from a killed client by the state of the control
    // connection when the data connection ends: a race worth running more than once.
    let mut next = Dialogue::connect(&server);
    for round in 0..20 {
        let mut ftp = next;
        ftp.log_in(USER);
        let mut data = ftp.pasv_connect();
        ftp.expect("STOR site.html", 150);
        data.write_all(&pattern(300_000, round)).unwrap();
        // The client dies: both connections close at once.
        drop(ftp);
        drop(data);
        // Its session is over once its connection slot is free again.
        next = eventually(Duration::from_secs(20), || {
            let (ftp, greeting) = Dialogue::open(server.addr);
            (greeting.code == 220).then_some(ftp)
        });
        assert_eq!(
            std::fs::read(server.home().join("site.html")).unwrap(),
            b"the good version",
            "round {round}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(server.home())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["site.html"], "temporary files left behind");
}
