//! The `ferry` binary as operators and scripts run it: `user`, `group` and `serve` with the exact
//! commands and flags of the CLI contract, in temporary working directories.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::dialogue::{Dialogue, eventually, free_port_range};
use crate::support::ferry_command as ferry;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Runs `command` with `stdin` as its standard input.
fn run_with_stdin(command: &mut Command, stdin: &str) -> Output {
    run_with_input(command, stdin, LIMIT)
}

fn run(command: &mut Command) -> Output {
    run_with_timeout(command, LIMIT)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must fail, and returns what it said on standard error.
#[track_caller]
fn fails(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        !output.status.success(),
        "{command:?} succeeded: {}",
        stdout(&output)
    );
    stderr(&output)
}

fn login(ftp: &mut Dialogue, user: &str, password: &str) -> u16 {
    ftp.expect(&format!("USER {user}"), 331);
    ftp.command(&format!("PASS {password}")).code
}

fn add_user(dir: &Path, db: &str, args: &[&str], password: &str) {
    let mut all = vec!["--db", db, "user", "add"];
    all.extend_from_slice(args);
    all.push("--password-stdin");
    let output = run_with_stdin(&mut ferry(dir, &all), &format!("{password}\n"));
    assert_success(&output);
}

#[test]
fn user_and_group_commands_manage_the_accounts_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = "accounts.db";
    let output = run(&mut ferry(
        d,
        &[
            "--db",
            db,
            "group",
            "add",
            "web",
            "--home",
            "sites/web",
            "--perms",
            "elr",
        ],
    ));
    assert_success(&output);
    assert!(stdout(&output).contains("group web added"));
    let groups = stdout(&run(&mut ferry(d, &["--db", db, "group", "list"])));
    let web = groups
        .lines()
        .find(|l| l.starts_with("web "))
        .expect(&groups);
    assert!(web.contains("elr") && web.contains("sites/web"), "{web}");

    add_user(d, db, &["bob", "--group", "web"], "bob's pass");
    add_user(
        d,
        db,
        &[
            "carol",
            "--home",
            "carol-home",
            "--perms",
            "elradfmw",
            "--admin",
        ],
        "old pass",
    );
    let users = stdout(&run(&mut ferry(d, &["--db", db, "user", "list"])));
    let bob = users.lines().find(|l| l.starts_with("bob ")).expect(&users);
    assert!(
        bob.contains("web") && bob.contains("elr") && bob.contains("sites/web"),
        "{bob}"
    );
    let carol = users
        .lines()
        .find(|l| l.starts_with("carol "))
        .expect(&users);
    assert!(carol.contains("elradfmw") && carol.contains("yes") && carol.contains("carol-home"));

    // Mistakes say what is wrong.
    let again = run_with_stdin(
        &mut ferry(d, &["--db", db, "user", "add", "bob", "--password-stdin"]),
        "x\n",
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("bob"), "{}", stderr(&again));
    let no_stdin = fails(&mut ferry(d, &["--db", db, "user", "add", "dave"]));
    assert!(no_stdin.contains("--password-stdin"), "{no_stdin}");
    let empty = run_with_stdin(
        &mut ferry(d, &["--db", db, "user", "add", "dave", "--password-stdin"]),
        "\n",
    );
    assert!(!empty.status.success() && stderr(&empty).contains("empty"));
    let bad_perms = run_with_stdin(
        &mut ferry(
            d,
            &[
                "--db",
                db,
                "user",
                "add",
                "eve",
                "--perms",
                "xyz",
                "--password-stdin",
            ],
        ),
        "pw\n",
    );
    assert!(!bad_perms.status.success(), "{}", stdout(&bad_perms));
    assert!(!stderr(&bad_perms).is_empty());
    let in_use = fails(&mut ferry(d, &["--db", db, "group", "del", "web"]));
    assert!(in_use.contains("web"), "{in_use}");
    assert!(fails(&mut ferry(d, &["--db", db, "user", "del", "nobody"])).contains("nobody"));

    // A new password replaces the old one: checked by logging in for real.
    let output = run_with_stdin(
        &mut ferry(
            d,
            &["--db", db, "user", "passwd", "carol", "--password-stdin"],
        ),
        "new pass\n",
    );
    assert_success(&output);
    let server = FerryServe::start(&mut ferry(
        d,
        &["--db", db, "serve", "127.0.0.1:0", "--root", "homes"],
    ));
    let mut ftp = server.connect();
    assert_eq!(login(&mut ftp, "carol", "old pass"), 530);
    assert_eq!(login(&mut ftp, "carol", "new pass"), 230);
    ftp.expect("MKD made-by-carol", 257);
    assert!(d.join("homes/carol-home/made-by-carol").is_dir());
    // bob's home and permissions come from his group.
    let mut ftp = server.connect();
    assert_eq!(login(&mut ftp, "bob", "bob's pass"), 230);
    ftp.expect("MKD nope", 550);
    assert!(d.join("homes/sites/web").is_dir());
    drop(server);

    assert_success(&run(&mut ferry(d, &["--db", db, "user", "del", "bob"])));
    assert_success(&run(&mut ferry(d, &["--db", db, "group", "del", "web"])));
    let users = stdout(&run(&mut ferry(d, &["--db", db, "user", "list"])));
    assert!(!users.contains("bob") && users.contains("carol"), "{users}");
    let groups = stdout(&run(&mut ferry(d, &["--db", db, "group", "list"])));
    assert!(!groups.contains("web"), "{groups}");
    // Without --db the database is ./ferry.db; a listing never creates it, an addition does.
    assert!(!d.join("ferry.db").exists());
    assert!(!run(&mut ferry(d, &["group", "list"])).status.success());
    assert!(!d.join("ferry.db").exists());
    assert_success(&run(&mut ferry(d, &["group", "add", "web"])));
    assert!(d.join("ferry.db").exists());
}

#[test]
fn serve_without_configuration_creates_its_files_and_says_how_to_add_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = FerryServe::start(&mut ferry(d, &["serve", "127.0.0.1:0"]));
    assert!(d.join("ferry.db").is_file());
    assert!(d.join("ftp-root").is_dir());
    let log = server.log();
    assert!(log.contains("user add NAME --password-stdin"), "{log}");

    // The first user, added next to the running server, can log in at once.
    let output = run_with_stdin(
        &mut ferry(d, &["user", "add", "first", "--password-stdin"]),
        "first pass\n",
    );
    assert_success(&output);
    let mut ftp = server.connect();
    assert_eq!(login(&mut ftp, "first", "first pass"), 230);
    let (_, done) = ftp.upload("STOR hello.txt", b"hello");
    assert_eq!(done.code, 226);
    assert_eq!(
        std::fs::read(d.join("ftp-root/first/hello.txt")).unwrap(),
        b"hello"
    );
    // One log line per transfer: user, path, bytes, duration and result.
    let log = eventually(Duration::from_secs(10), || {
        let log = server.log();
        log.lines()
            .find(|l| l.contains(" transfer ") && l.contains("hello.txt"))
            .map(str::to_owned)
    });
    eprintln!("{log}");
    for field in [
        "first",
        "STOR",
        "/hello.txt",
        "bytes=5",
        "duration_ms=",
        "ok",
    ] {
        assert!(log.contains(field), "{field} missing from {log}");
    }

    // SIGTERM: the idle session is told, new connections are refused, the exit is clean.
    let addr = server.addr;
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert_eq!(ftp.reply().code, 421);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn serve_reads_a_toml_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ports = free_port_range(3);
    let config = format!(
        r#"
db = "conf.db"

[serve]
listen = "127.0.0.1:0"
root = "served"
passive_ports = "{ports}"
banner = "Welcome to the configured server."
masquerade_map = "127.0.0.0/8=10.1.2.3,0.0.0.0/0=203.0.113.1"
active_mode = false
max_per_ip = 1

[serve.timeouts]
idle = 60
"#
    );
    std::fs::write(d.join("ferry.toml"), config).unwrap();
    add_user(d, "conf.db", &["conf"], "conf pass");
    let server = FerryServe::start(&mut ferry(d, &["serve", "--config", "ferry.toml"]));
    let (mut ftp, greeting) = Dialogue::open(server.addr);
    assert_eq!(greeting.lines, ["220 Welcome to the configured server."]);
    assert_eq!(login(&mut ftp, "conf", "conf pass"), 230);
    let pasv = ftp.expect("PASV", 227);
    assert!(pasv.lines[0].contains("(10,1,2,3,"), "{pasv:?}");
    let port = ferry::protocol::address::parse_pasv_reply(&pasv.lines[0][4..])
        .unwrap()
        .port();
    let text = ports.to_string();
    let (low, high) = text.split_once('-').unwrap();
    assert!(
        (low.parse().unwrap()..=high.parse().unwrap()).contains(&port),
        "{port} not in {ports}"
    );
    ftp.expect("PORT 127,0,0,1,200,10", 502);
    let (_, second) = Dialogue::open(server.addr);
    assert_eq!(second.code, 421, "{second:?}");
    assert!(d.join("served/conf").is_dir());
    assert!(server.terminate().success());
}

#[test]
fn serve_reads_ferry_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ports = free_port_range(2);
    add_user(d, "env.db", &["envuser"], "env pass");
    let server = FerryServe::start(
        ferry(d, &["serve"])
            .env("FERRY_DB", "env.db")
            .env("FERRY_LISTEN", "127.0.0.1:0")
            .env("FERRY_ROOT", "env-root")
            .env("FERRY_PASSIVE_PORTS", ports.to_string())
            .env("FERRY_MASQUERADE_ADDRESS", "203.0.113.7")
            .env("FERRY_NO_ACTIVE_MODE", "true")
            .env("FERRY_MAX_PER_IP", "1"),
    );
    let mut ftp = server.connect();
    assert_eq!(login(&mut ftp, "envuser", "env pass"), 230);
    let reply = ftp.expect("PASV", 227);
    assert!(reply.lines[0].contains("(203,0,113,7,"), "{reply:?}");
    let port = ferry::protocol::address::parse_pasv_reply(&reply.lines[0][4..])
        .unwrap()
        .port();
    let text = ports.to_string();
    let (low, _) = text.split_once('-').unwrap();
    assert!(port == low.parse::<u16>().unwrap() || port == low.parse::<u16>().unwrap() + 1);
    assert!(d.join("env-root/envuser").is_dir());
    ftp.expect("EPRT |1|127.0.0.1|50000|", 502);
    let (_, second) = Dialogue::open(server.addr);
    assert_eq!(second.code, 421, "{second:?}");
    // A flag wins over its environment variable.
    drop(server);
    let server = FerryServe::start(
        ferry(d, &["serve", "--root", "flag-root"])
            .env("FERRY_DB", "env.db")
            .env("FERRY_LISTEN", "127.0.0.1:0")
            .env("FERRY_ROOT", "env-root"),
    );
    let mut ftp = server.connect();
    assert_eq!(login(&mut ftp, "envuser", "env pass"), 230);
    assert!(d.join("flag-root/envuser").is_dir());
}

#[test]
fn bad_flags_and_configuration_are_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        fails(&mut ferry(d, &args))
    };
    assert!(serve(&["--passive-ports", "9-1"]).contains("backwards"));
    let message = serve(&["--passive-ports", "lots"]);
    assert!(
        message.contains("\"lots\" is not a port number"),
        "{message}"
    );
    assert!(serve(&["--passive-ports", "0-10"]).contains("not a port number"));
    assert!(serve(&["--masquerade-map", "10.0.0.0/8"]).contains("CIDR=ADDRESS"));
    assert!(serve(&["--masquerade-map", "lan=10.0.0.5"]).contains("not a network"));
    let message = serve(&["--max-connections", "many"]);
    assert!(message.contains("--max-connections"), "{message}");
    assert!(serve(&["--certfile", "cert.pem"]).contains("--keyfile"));
    assert!(serve(&["--tls-required", "all"]).contains("certificate"));
    assert!(serve(&["--tls-required", "sometimes"]).contains("sometimes"));
    assert!(serve(&["--no-such-flag"]).contains("--no-such-flag"));
    let message = serve(&["--config", "missing.toml"]);
    assert!(message.contains("missing.toml"), "{message}");
    std::fs::write(
        d.join("typo.toml"),
        "[serve]\nlisten_on = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let message = serve(&["--config", "typo.toml"]);
    assert!(message.contains("listen_on"), "{message}");
    let message = fails(&mut ferry(d, &["serve", "not-an-address"]));
    assert!(message.contains("not-an-address"), "{message}");
    // Nothing was left behind by the refused starts but the database they may open.
    assert!(!d.join("ftp-root").exists());
}

#[test]
fn sigterm_lets_a_running_transfer_finish_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "ferry.db", &["mover"], "mover pass");
    let content = pattern(16 << 20, 21);
    std::fs::create_dir_all(d.join("ftp-root/mover")).unwrap();
    std::fs::write(d.join("ftp-root/mover/big.bin"), &content).unwrap();
    let server = FerryServe::start(&mut ferry(d, &["serve", "127.0.0.1:0"]));
    let mut ftp = server.connect();
    assert_eq!(login(&mut ftp, "mover", "mover pass"), 230);
    ftp.expect("TYPE I", 200);
    let mut data = ftp.pasv_connect();
    ftp.expect("RETR big.bin", 150);
    let mut got = vec![0u8; 64 * 1024];
    std::io::Read::read_exact(&mut data, &mut got).unwrap();
    let addr = server.addr;
    server.signal_terminate();
    eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).is_err().then_some(())
    });
    std::io::Read::read_to_end(&mut data, &mut got).unwrap();
    assert_eq!(sha256(&got), sha256(&content));
    assert_eq!(ftp.reply().code, 226);
    let status = server.wait();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn serve_on_ipv6_answers_epsv_and_eprt() {
    assert!(
        std::net::TcpListener::bind("[::1]:0").is_ok(),
        "this test needs an IPv6 loopback (::1); enable IPv6 on lo"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "ferry.db", &["six"], "six pass");
    std::fs::create_dir_all(d.join("ftp-root/six")).unwrap();
    std::fs::write(d.join("ftp-root/six/f"), b"over ipv6").unwrap();
    let server = FerryServe::start(&mut ferry(d, &["serve", "[::1]:0"]));
    assert!(server.addr.is_ipv6());
    let mut ftp = server.connect();
    assert_eq!(login(&mut ftp, "six", "six pass"), 230);
    let pasv = ftp.expect("PASV", 425);
    assert!(pasv.text().contains("EPSV"), "{pasv:?}");
    let wrong = ftp.expect("EPSV 1", 522);
    assert!(wrong.text().contains("(2)"), "{wrong:?}");
    ftp.expect("EPSV 2", 229);
    let port = ftp.epsv();
    let mut data = std::net::TcpStream::connect(("::1", port)).unwrap();
    ftp.expect("RETR f", 150);
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut data, &mut got).unwrap();
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(got, b"over ipv6");

    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    ftp.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 501);
    ftp.expect(&format!("EPRT |2|::1|{port}|"), 200);
    ftp.expect("RETR f", 150);
    let (mut data, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut data, &mut got).unwrap();
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(got, b"over ipv6");
}

#[test]
fn serve_with_no_arguments_listens_on_127_0_0_1_port_2121() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The default port must be free: another server on it is not ours to stop.
    assert!(
        std::net::TcpListener::bind("127.0.0.1:2121").is_ok(),
        "this test needs 127.0.0.1:2121 free (the default address); stop what listens there"
    );
    let server = FerryServe::start(&mut ferry(d, &["serve"]));
    assert_eq!(server.addr, "127.0.0.1:2121".parse().unwrap());
    assert!(d.join("ferry.db").is_file() && d.join("ftp-root").is_dir());
    let mut ftp = server.connect();
    ftp.expect("USER nobody", 331);
    ftp.expect("PASS nothing", 530);
    assert!(server.terminate().success());
}

#[test]
fn passwords_never_reach_the_log_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "ferry.db", &["quiet"], "hunter2 right");
    let server = FerryServe::start(ferry(d, &["serve", "127.0.0.1:0"]).env("FERRY_LOG", "debug"));
    let mut ftp = server.connect();
    assert_eq!(login(&mut ftp, "quiet", "hunter2 wrong"), 530);
    assert_eq!(login(&mut ftp, "quiet", "hunter2 right"), 230);
    ftp.expect("NOOP", 200);
    ftp.expect("QUIT", 221);
    let log = eventually(Duration::from_secs(10), || {
        let log = server.log();
        log.contains("disconnected").then_some(log)
    });
    assert!(
        log.contains("command=NOOP"),
        "debug logging is not on:\n{log}"
    );
    assert!(!log.contains("hunter2"), "a password was logged:\n{log}");
}

#[test]
fn accounts_and_groups_can_require_tls_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let db = db.to_str().unwrap();
    assert_success(&run(&mut ferry(
        dir.path(),
        &[
            "--db",
            db,
            "group",
            "add",
            "secure",
            "--tls-required",
            "control",
        ],
    )));
    assert_success(&run_with_stdin(
        &mut ferry(
            dir.path(),
            &[
                "--db",
                db,
                "user",
                "add",
                "carol",
                "--tls-required",
                "all",
                "--password-stdin",
            ],
        ),
        "pw",
    ));
    assert_success(&run_with_stdin(
        &mut ferry(
            dir.path(),
            &[
                "--db",
                db,
                "user",
                "add",
                "dave",
                "--group",
                "secure",
                "--password-stdin",
            ],
        ),
        "pw",
    ));
    let groups = stdout(&run(&mut ferry(dir.path(), &["--db", db, "group", "list"])));
    assert!(
        groups
            .lines()
            .any(|l| l.starts_with("secure") && l.contains(" control ")),
        "{groups}"
    );
    // The store is what the server consults at login (the FTPS suite shows it enforced).
    let store = ferry::auth::store::AccountStore::open(Path::new(db)).unwrap();
    let users = store.list_users().unwrap();
    let requirement = |name: &str| {
        users
            .iter()
            .find(|u| u.name == name)
            .and_then(|u| u.effective_tls_required())
            .map(|t| t.as_str())
    };
    assert_eq!(requirement("carol"), Some("all"));
    assert_eq!(requirement("dave"), Some("control"));
    let listed = stdout(&run(&mut ferry(dir.path(), &["--db", db, "user", "list"])));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("carol") && l.contains(" all ")),
        "{listed}"
    );
    let refused = fails(&mut ferry(
        dir.path(),
        &[
            "--db",
            db,
            "group",
            "add",
            "bad",
            "--tls-required",
            "sometimes",
        ],
    ));
    assert!(refused.contains("sometimes"), "{refused}");
}

#[test]
fn metrics_and_healthz_count_what_real_clients_did() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "ferry.db", &["carol"], "pw");
    let serve = FerryServe::start(&mut ferry(
        d,
        &["serve", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
    ));
    let http = eventually(LIMIT, || {
        serve
            .log()
            .lines()
            .find(|l| l.contains("serving /metrics"))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .map(str::to_owned)
            })
    });
    let ftp = format!("ftp://carol:pw@{}/", serve.addr);
    let upload = d.join("up.bin");
    std::fs::write(&upload, pattern(10_000, 3)).unwrap();
    assert_success(&run(Command::new("curl")
        .args(["-sS", "-T"])
        .arg(&upload)
        .arg(format!("{ftp}up.bin"))));
    assert_success(&run(Command::new("curl")
        .args(["-sS", "-o", "/dev/null"])
        .arg(format!("{ftp}up.bin"))));
    // A wrong password counts as a failed login (curl exits 67).
    let refused = run(Command::new("curl")
        .args(["-sS", "-o", "/dev/null"])
        .arg(format!("ftp://carol:nope@{}/up.bin", serve.addr)));
    assert_eq!(refused.status.code(), Some(67));

    let scrape = run(Command::new("curl").args(["-sS", "-i", &format!("http://{http}/metrics")]));
    assert_success(&scrape);
    let text = stdout(&scrape);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for line in [
        "ferry_logins_total{result=\"ok\"} 2",
        "ferry_logins_total{result=\"failed\"} 1",
        "ferry_transfer_bytes_total{direction=\"in\"} 10000",
        "ferry_transfer_bytes_total{direction=\"out\"} 10000",
        "ferry_transfers_total{direction=\"in\",result=\"ok\"} 1",
        "ferry_transfers_total{direction=\"out\",result=\"ok\"} 1",
        "ferry_commands_total{verb=\"STOR\"} 1",
        "ferry_commands_total{verb=\"RETR\"} 1",
        "ferry_sessions_total 3",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let health = run(Command::new("curl").args(["-sS", &format!("http://{http}/healthz")]));
    assert_eq!(stdout(&health), "ok\n");
    let missing = run(Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{http}/nothing"),
    ]));
    assert_eq!(stdout(&missing), "404");
    assert!(serve.terminate().success());
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "ferry.db", &["carol"], "pw");
    // Two different self-signed localhost certificates, as an operator's renewal would give.
    assert_success(&run(&mut ferry(d, &["certs", "dev", "--dir", "old"])));
    assert_success(&run(&mut ferry(d, &["certs", "dev", "--dir", "new"])));
    std::fs::create_dir(d.join("live")).unwrap();
    for name in ["cert.pem", "key.pem"] {
        std::fs::copy(d.join("old").join(name), d.join("live").join(name)).unwrap();
    }
    let serve = FerryServe::start(&mut ferry(
        d,
        &[
            "serve",
            "127.0.0.1:0",
            "--certfile",
            "live/cert.pem",
            "--keyfile",
            "live/key.pem",
        ],
    ));
    let list_with = |ca: &str| {
        run(Command::new("curl")
            .current_dir(d)
            .args(["-sS", "--ssl-reqd", "--cacert", ca, "-o", "/dev/null"])
            .arg(format!("ftp://carol:pw@localhost:{}/", serve.addr.port())))
    };
    assert_success(&list_with("old/cert.pem"));
    assert!(!list_with("new/cert.pem").status.success());

    for name in ["cert.pem", "key.pem"] {
        std::fs::copy(d.join("new").join(name), d.join("live").join(name)).unwrap();
    }
    let status = Command::new("sh")
        .args(["-c", &format!("kill -HUP {}", serve.pid())])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(LIMIT, || {
        serve.log().contains("certificate reloaded").then_some(())
    });
    assert_success(&list_with("new/cert.pem"));
    assert!(!list_with("old/cert.pem").status.success());
    assert!(serve.terminate().success());
}

#[test]
fn accounts_and_groups_keep_their_files_on_the_storage_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("ferry.toml"),
        r#"
[serve]
listen = "127.0.0.1:0"
root = "homes"

[storage.archive]
backend = "fs"
root = "archive-disk"
"#,
    )
    .unwrap();
    let db = "ferry.db";
    assert_success(&run(&mut ferry(
        d,
        &["--db", db, "group", "add", "cold", "--storage", "archive"],
    )));
    add_user(d, db, &["alice"], "alice pw");
    add_user(d, db, &["bob", "--group", "cold"], "bob pw");
    add_user(d, db, &["carol", "--storage", "nowhere"], "carol pw");
    let groups = stdout(&run(&mut ferry(d, &["--db", db, "group", "list"])));
    assert!(
        groups
            .lines()
            .any(|l| l.starts_with("cold ") && l.contains(" archive ")),
        "{groups}"
    );
    let server = FerryServe::start(&mut ferry(
        d,
        &["--db", db, "serve", "--config", "ferry.toml"],
    ));

    let upload_as = |user: &str, password: &str, name: &str| {
        let mut ftp = server.connect();
        assert_eq!(login(&mut ftp, user, password), 230);
        let (_, done) = ftp.upload(&format!("STOR {name}"), name.as_bytes());
        assert_eq!(done.code, 226, "{done:?}");
    };
    upload_as("alice", "alice pw", "a.txt");
    upload_as("bob", "bob pw", "b.txt");
    assert_eq!(
        std::fs::read(d.join("homes/alice/a.txt")).unwrap(),
        b"a.txt"
    );
    assert_eq!(
        std::fs::read(d.join("archive-disk/bob/b.txt")).unwrap(),
        b"b.txt"
    );
    assert!(!d.join("homes/bob").exists());

    // A storage this server does not have: refused at login, with the reason.
    let mut ftp = server.connect();
    ftp.expect("USER carol", 331);
    let refused = ftp.expect("PASS carol pw", 530);
    assert!(
        refused.text().contains("\"nowhere\" is not configured"),
        "{refused:?}"
    );

    // Moving an account to another storage takes effect at its next login.
    assert_success(&run(&mut ferry(
        d,
        &["--db", db, "user", "edit", "alice", "--storage", "archive"],
    )));
    upload_as("alice", "alice pw", "moved.txt");
    assert!(d.join("archive-disk/alice/moved.txt").is_file());
    assert_success(&run(&mut ferry(
        d,
        &["--db", db, "user", "edit", "bob", "--storage", "archive"],
    )));
    assert!(server.terminate().success());

    let unknown = fails(&mut ferry(
        d,
        &["--db", db, "serve", "127.0.0.1:0", "--storage", "tape"],
    ));
    assert!(unknown.contains("[storage.tape]"), "{unknown}");
}

#[test]
fn nodes_share_accounts_through_a_read_only_snapshot_they_reread_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let admin = "admin.db";
    add_user(d, admin, &["alice"], "alice pw");
    std::fs::create_dir_all(d.join("node-a")).unwrap();
    std::fs::create_dir_all(d.join("node-b")).unwrap();
    let ship = |node: &str| {
        let output = run(&mut ferry(
            d,
            &[
                "--db",
                admin,
                "accounts",
                "snapshot",
                &format!("{node}/accounts.db"),
            ],
        ));
        assert_success(&output);
    };
    ship("node-a");
    ship("node-b");
    let node = |name: &str| {
        FerryServe::start(&mut ferry(
            &d.join(name),
            &[
                "--db",
                "accounts.db",
                "serve",
                "127.0.0.1:0",
                "--root",
                "../shared-root",
                "--accounts-read-only",
            ],
        ))
    };
    let (a, b) = (node("node-a"), node("node-b"));
    for server in [&a, &b] {
        let mut ftp = server.connect();
        assert_eq!(login(&mut ftp, "alice", "alice pw"), 230);
        let mut ftp = server.connect();
        assert_eq!(login(&mut ftp, "bob", "bob pw"), 530);
    }
    let snapshot_a = std::fs::read(d.join("node-a/accounts.db")).unwrap();

    // The admin adds bob; the new copy reaches each node and is read at the next login.
    add_user(d, admin, &["bob"], "bob pw");
    ship("node-a");
    ship("node-b");
    for server in [&a, &b] {
        let mut ftp = server.connect();
        assert_eq!(login(&mut ftp, "bob", "bob pw"), 230);
    }
    assert_ne!(
        std::fs::read(d.join("node-a/accounts.db")).unwrap(),
        snapshot_a
    );
    // Nothing was written beside the copies: no journal, no WAL.
    for node in ["node-a", "node-b"] {
        let mut names: Vec<String> = std::fs::read_dir(d.join(node))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["accounts.db"], "{node}");
    }
    assert!(
        a.log()
            .contains("read a newer copy of the accounts database")
    );
    drop((a, b));

    let refused = fails(&mut ferry(
        d,
        &[
            "--db",
            "missing.db",
            "serve",
            "127.0.0.1:0",
            "--accounts-read-only",
        ],
    ));
    assert!(refused.contains("accounts snapshot"), "{refused}");
}
