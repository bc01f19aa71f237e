//! HOST (RFC 7151) against a real `ferry serve` with `[hosts."NAME"]` tables: each name has its
//! own root and greeting, accounts can be kept to their hosts, and the command's state rules
//! (before USER only, unknown names, REIN) hold, in raw dialogues and with lftp, which sends HOST
//! with the name it connected to whenever FEAT offers it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::dialogue::Dialogue;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(60);

const CONFIG: &str = r#"
[serve]
root = "root"

[hosts."www.example.com"]
root = "sites/www"
aliases = ["example.com"]
banner = "Welcome to www.example.com."

[hosts."shop.example.org"]
root = "sites/shop"
"#;

fn add_user(dir: &Path, args: &[&str]) {
    let mut all = vec!["--db", "ferry.db", "user", "add"];
    all.extend_from_slice(args);
    all.push("--password-stdin");
    let added = run_with_input(&mut ferry_command(dir, &all), PASSWORD, LIMIT);
    assert_success(&added);
}

fn write(dir: &Path, path: &str, content: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A server with two sites, and an account on each besides an unrestricted one.
fn hosting_server(dir: &Path) -> FerryServe {
    std::fs::write(dir.join("ferry.toml"), CONFIG).unwrap();
    add_user(dir, &[USER]);
    add_user(dir, &["webmaster", "--hosts", "www.example.com"]);
    add_user(dir, &["shopkeeper", "--hosts", "Shop.Example.org"]);
    write(dir, "root/alice/where.txt", "default site");
    write(dir, "sites/www/alice/where.txt", "www site");
    write(dir, "sites/www/webmaster/index.html", "<h1>www</h1>");
    write(dir, "sites/shop/shopkeeper/cart.txt", "shop");
    FerryServe::start(&mut ferry_command(
        dir,
        &[
            "--db",
            "ferry.db",
            "serve",
            "127.0.0.1:0",
            "--config",
            "ferry.toml",
        ],
    ))
}

fn log_in(ftp: &mut Dialogue, user: &str) -> u16 {
    ftp.expect(&format!("USER {user}"), 331);
    ftp.command(&format!("PASS {PASSWORD}")).code
}

fn read(ftp: &mut Dialogue, path: &str) -> String {
    let (body, done) = ftp.download(&format!("RETR {path}"));
    assert_eq!(done.code, 226, "{done:?}");
    String::from_utf8(body).unwrap()
}

#[test]
fn each_host_serves_its_own_root_and_greeting() {
    let dir = tempfile::tempdir().unwrap();
    let node = hosting_server(dir.path());

    let mut ftp = node.connect();
    let feat = ftp.expect("FEAT", 211).text();
    assert!(feat.contains("\n HOST\n"), "{feat}");
    let greeting = ftp.expect("HOST www.example.com", 220);
    assert_eq!(greeting.text(), "220 Welcome to www.example.com.");
    assert_eq!(log_in(&mut ftp, USER), 230);
    assert_eq!(read(&mut ftp, "where.txt"), "www site");

    // Without HOST, the server's own root.
    let mut ftp = node.connect();
    assert_eq!(log_in(&mut ftp, USER), 230);
    assert_eq!(read(&mut ftp, "where.txt"), "default site");

    // An alias in any case, with a final dot, is the same host; a host without a banner of
    // its own answers with its name.
    let mut ftp = node.connect();
    ftp.expect("HOST EXAMPLE.com.", 220);
    assert_eq!(log_in(&mut ftp, "webmaster"), 230);
    assert_eq!(read(&mut ftp, "index.html"), "<h1>www</h1>");
    let mut ftp = node.connect();
    assert_eq!(
        ftp.expect("HOST shop.example.org", 220).text(),
        "220 shop.example.org ready."
    );
    assert_eq!(log_in(&mut ftp, "shopkeeper"), 230);
    assert_eq!(read(&mut ftp, "cart.txt"), "shop");
}

#[test]
fn accounts_kept_to_hosts_log_in_there_only_and_on_their_first_host_without_host() {
    let dir = tempfile::tempdir().unwrap();
    let node = hosting_server(dir.path());

    // On another host: the reply of a wrong password.
    let mut ftp = node.connect();
    ftp.expect("HOST shop.example.org", 220);
    ftp.expect("USER webmaster", 331);
    assert_eq!(
        ftp.command(&format!("PASS {PASSWORD}")).text(),
        "530 Login incorrect."
    );
    // Without HOST (as every common client logs in): the account's own site.
    let mut ftp = node.connect();
    assert_eq!(log_in(&mut ftp, "webmaster"), 230);
    assert_eq!(read(&mut ftp, "index.html"), "<h1>www</h1>");
    let log = node.log();
    assert!(
        log.contains("not served on the host the client chose"),
        "{log}"
    );
}

#[test]
fn host_follows_the_state_rules_of_rfc_7151() {
    let dir = tempfile::tempdir().unwrap();
    let node = hosting_server(dir.path());
    let mut ftp = node.connect();
    let unknown = ftp.command("HOST unknown.example.net");
    assert_eq!(unknown.code, 504, "{unknown:?}");
    assert!(unknown.text().contains("unknown host"), "{unknown:?}");
    assert_eq!(ftp.command("HOST not..a.name").code, 501);
    assert_eq!(ftp.command("HOST").code, 501);
    // Several HOSTs before USER: the last one counts.
    ftp.expect("HOST shop.example.org", 220);
    ftp.expect("HOST www.example.com", 220);
    ftp.expect(&format!("USER {USER}"), 331);
    let late = ftp.command("HOST shop.example.org");
    assert_eq!(late.code, 503, "{late:?}");
    assert!(late.text().contains("before USER"), "{late:?}");
    ftp.expect(&format!("PASS {PASSWORD}"), 230);
    assert_eq!(read(&mut ftp, "where.txt"), "www site");
    assert_eq!(ftp.command("HOST www.example.com").code, 503);
    // REIN starts over without the host.
    ftp.expect("REIN", 220);
    assert_eq!(log_in(&mut ftp, USER), 230);
    assert_eq!(read(&mut ftp, "where.txt"), "default site");
    ftp.expect("REIN", 220);
    ftp.expect("HOST www.example.com", 220);
    assert_eq!(log_in(&mut ftp, USER), 230);
    assert_eq!(read(&mut ftp, "where.txt"), "www site");
}

#[test]
fn a_server_without_hosts_does_not_offer_host() {
    let server = TestServer::start();
    let mut ftp = Dialogue::connect(&server);
    assert!(!ftp.expect("FEAT", 211).text().contains("HOST"));
    assert_eq!(ftp.command("HOST www.example.com").code, 504);
    ftp.log_in(USER);
}

/// Runs lftp against `open_as` (the name it connects to and sends with HOST) and returns what
/// `cat where.txt` printed and the commands it sent.
fn lftp_cat_where(node: &FerryServe, dir: &Path, open_as: &str) -> (String, Vec<String>) {
    let log = dir.join(format!("lftp-{open_as}.log"));
    let output = run_with_timeout(
        Command::new("lftp").arg("-c").arg(format!(
            "set cmd:fail-exit yes; set ftp:ssl-allow no; set net:max-retries 1; \
             debug -o '{}' 9; open -u '{USER},{PASSWORD}' -p {} {open_as}; cat where.txt",
            log.display(),
            node.addr.port()
        )),
        LIMIT,
    );
    assert_success(&output);
    let sent = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|line| {
            line.split_once("---> ")
                .map(|(_, command)| command.to_owned())
        })
        .collect();
    (String::from_utf8(output.stdout).unwrap(), sent)
}

/// lftp sends HOST with the name it connected to when FEAT offers HOST: a configured name
/// picks that site, and the server's own address the server's root.
#[test]
fn lftp_sends_host_with_the_name_it_connected_to() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node = hosting_server(d);
    drop(node);
    // `localhost` as a virtual host of its own, as www.example.com would be with DNS.
    let config = format!("{CONFIG}\n[hosts.\"localhost\"]\nroot = \"sites/local\"\n");
    std::fs::write(d.join("ferry.toml"), config).unwrap();
    write(d, "sites/local/alice/where.txt", "local site");
    let node = FerryServe::start(&mut ferry_command(
        d,
        &[
            "--db",
            "ferry.db",
            "serve",
            "127.0.0.1:0",
            "--config",
            "ferry.toml",
        ],
    ));

    let (printed, sent) = lftp_cat_where(&node, d, "localhost");
    assert!(sent.iter().any(|c| c == "HOST localhost"), "{sent:?}");
    let host_at = sent.iter().position(|c| c.starts_with("HOST")).unwrap();
    let user_at = sent.iter().position(|c| c.starts_with("USER")).unwrap();
    assert!(host_at < user_at, "{sent:?}");
    assert_eq!(printed, "local site");

    let (printed, sent) = lftp_cat_where(&node, d, "127.0.0.1");
    assert!(sent.iter().any(|c| c == "HOST 127.0.0.1"), "{sent:?}");
    assert_eq!(printed, "default site");
}

#[test]
fn hosts_and_host_lists_are_checked_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad_list = run_with_input(
        &mut ferry_command(
            d,
            &[
                "--db",
                "ferry.db",
                "user",
                "add",
                "x",
                "--hosts",
                "www.example.com,bad_name",
                "--password-stdin",
            ],
        ),
        PASSWORD,
        LIMIT,
    );
    assert!(!bad_list.status.success());
    let said = String::from_utf8_lossy(&bad_list.stderr);
    assert!(
        said.contains("bad_name") && said.contains("host name"),
        "{said}"
    );

    std::fs::write(
        d.join("ferry.toml"),
        "[hosts.\"www.example.com\"]\nroot = \"a\"\nstorage = \"b\"\n",
    )
    .unwrap();
    let both = run_with_timeout(
        &mut ferry_command(
            d,
            &[
                "--db",
                "ferry.db",
                "serve",
                "127.0.0.1:0",
                "--config",
                "ferry.toml",
            ],
        ),
        LIMIT,
    );
    assert!(!both.status.success());
    let said = String::from_utf8_lossy(&both.stderr);
    assert!(said.contains("exactly one of root"), "{said}");
}

/// A certificate of a virtual host goes to TLS clients that name the host (SNI), which also puts
/// them on that host (implicit FTPS clients cannot send HOST first); clients that name no host get
/// the server's certificate and its default site. After AUTH TLS, HOST may only name the host the
/// handshake named.
#[test]
fn tls_clients_naming_a_host_get_its_certificate_and_its_site() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, &[USER]);
    write(d, "root/alice/where.txt", "default site");
    write(d, "sites/local/alice/where.txt", "local site");
    // The host's own certificate, which the server's (certs-dev, also for localhost) is not.
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "virtual host localhost");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(d.join("host.pem"), cert.pem()).unwrap();
    std::fs::write(d.join("host.key"), key.serialize_pem()).unwrap();
    std::fs::write(
        d.join("ferry.toml"),
        "[serve]\nroot = \"root\"\n[hosts.\"localhost\"]\nroot = \"sites/local\"\n\
         certfile = \"host.pem\"\nkeyfile = \"host.key\"\n",
    )
    .unwrap();
    let (certfile, keyfile) = dev_certificate();
    let node = FerryServe::start(&mut ferry_command(
        d,
        &[
            "--db",
            "ferry.db",
            "serve",
            "127.0.0.1:0",
            "--config",
            "ferry.toml",
            "--certfile",
            certfile.to_str().unwrap(),
            "--keyfile",
            keyfile.to_str().unwrap(),
            "--implicit-tls",
            "127.0.0.1:0",
        ],
    ));
    let implicit_port = node
        .log()
        .split_whitespace()
        .find_map(|word| word.strip_prefix("implicit_tls="))
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .expect("the implicit listener in the log")
        .port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/protocol-tests/python/tls_host_session.py"
    );
    let output = run_with_timeout(
        Command::new("python3")
            .arg(script)
            .arg(node.addr.port().to_string())
            .arg(implicit_port.to_string())
            .arg(d.join("host.pem"))
            .arg(&certfile)
            .arg(USER)
            .arg(PASSWORD),
        LIMIT,
    );
    assert_success(&output);
    let printed = String::from_utf8(output.stdout).unwrap();
    let steps: Vec<&str> = printed.lines().collect();
    assert_eq!(
        steps,
        [
            "explicit-sni HOST www.example.com -> 504 www.example.com: the TLS handshake asked \
             for localhost; HOST must name the same host.",
            "explicit-sni HOST localhost -> 220 localhost ready.",
            "explicit-sni where.txt local site",
            "implicit-sni greeting 220",
            "implicit-sni login 230",
            "implicit-sni size 213 10",
            "explicit-ip HOST www.example.com -> 503 HOST must come before AUTH TLS (RFC 7151): \
             reconnect and send HOST first.",
            "explicit-ip HOST 127.0.0.1 -> 503 HOST must come before AUTH TLS (RFC 7151): \
             reconnect and send HOST first.",
            "explicit-ip where.txt default site",
        ],
        "{printed}"
    );
}
