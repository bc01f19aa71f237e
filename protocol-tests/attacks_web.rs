//! Attacks on `ferry deploy serve` driven from outside against the real process: an open
//! redirect after login, login throttling behind a reverse proxy, slow clients holding
//! connections, sessions outliving a password change, and a provider token following a
//! redirect. Each test names the attack it stands for and would fail on a server without the
//! defence.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::deploy_providers::{PythonPeer, TOKEN, add_service, api_requests, check_line, header};
use crate::deploy_serve::{
    DeployServer, LIMIT, Repos, add_named_service, add_token, add_user, curl, ferry, login,
    page_csrf,
};
use crate::support::*;

/// Runs curl writing the answer's headers to a file; the status, the headers and the body.
fn curl_with_headers(dir: &Path, args: &[&str]) -> (u16, String, String) {
    let headers = tempfile::NamedTempFile::new_in(dir).unwrap();
    let mut all = vec!["-D", headers.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let (status, body) = curl(&all);
    (
        status,
        std::fs::read_to_string(headers.path()).unwrap(),
        body,
    )
}

/// The value of the answer's `Location` header, if any.
fn location(headers: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("location")
            .then(|| value.trim().to_owned())
    })
}

/// The login form's hidden `next` field, its HTML escapes undone.
fn form_next(page: &str) -> String {
    let after = page
        .split_once("name=\"next\" value=\"")
        .unwrap_or_else(|| panic!("no next field in {page}"))
        .1;
    let escaped = after.split('"').next().unwrap();
    [
        ("&#x2f;", "/"),
        ("&#x27;", "'"),
        ("&quot;", "\""),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(escaped.to_owned(), |text, (entity, plain)| {
        text.replace(entity, plain)
    })
}

/// `next` values (as they appear in a query string) that must never leave the site, and one
/// that must be kept, with where each must lead.
const FOREIGN_NEXTS: &[&str] = &[
    "//evil.example",
    "///evil.example",
    "/%5Cevil.example",
    "/%5C%5Cevil.example",
    "%5C%5Cevil.example",
    "/%09/evil.example",
    "%09//evil.example",
    "/%0a/evil.example",
    "/%0d/evil.example",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "https://evil.example",
    "https%3A%2F%2Fevil.example%2F",
    "javascript:alert(1)",
    "evil.example",
    "/%0d%0aSet-Cookie:x=1",
    "/x%0aLocation:%20https://evil.example",
    "/%E2%80%A8/evil.example",
    "/%00/evil.example",
    "/%7F/evil.example",
];

#[test]
fn login_redirects_only_to_paths_on_this_site_and_never_answers_500() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, "admin", true);
    let server = DeployServer::start(&db, &[]);
    let jar = dir.path().join("cookies.txt");
    let jar = jar.to_str().unwrap();
    let (status, page) = login(&server, Path::new(jar), "admin", PASSWORD);
    assert_eq!(status, 200, "{page}");

    let cases = FOREIGN_NEXTS.iter().map(|next| (*next, "/")).chain([
        ("/services/site", "/services/site"),
        ("%2Flog%3Fpage%3D2", "/log?page=2"),
    ]);
    for (next, expected) in cases {
        // Logged in: /login sends the browser straight on.
        let url = server.url(&format!("/login?next={next}"));
        let (status, headers, body) = curl_with_headers(dir.path(), &["-b", jar, &url]);
        assert_eq!(status, 303, "GET /login?next={next}: {headers}{body}");
        assert_eq!(
            location(&headers).as_deref(),
            Some(expected),
            "GET /login?next={next}: {headers}"
        );

        // Logged out: the form carries the cleaned `next`, and posting it leads there.
        let fresh = dir.path().join("fresh.txt");
        let fresh = fresh.to_str().unwrap();
        let _ = std::fs::remove_file(fresh);
        let (status, page) = curl(&["-b", fresh, "-c", fresh, &url]);
        assert_eq!(status, 200, "{page}");
        assert_eq!(form_next(&page), expected, "the form of /login?next={next}");
        let password: String = url::form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect();
        let form = format!(
            "user=admin&password={password}&csrf={}&next={next}",
            page_csrf(&page)
        );
        let (status, headers, body) = curl_with_headers(
            dir.path(),
            &["-b", fresh, "--data", &form, &server.url("/login")],
        );
        assert_eq!(status, 303, "POST next={next}: {headers}{body}");
        assert_eq!(
            location(&headers).as_deref(),
            Some(expected),
            "POST next={next}: {headers}"
        );
        assert!(
            !headers.to_ascii_lowercase().contains("set-cookie: x="),
            "a header was injected: {headers}"
        );
    }
}

#[test]
fn a_provider_token_never_follows_a_redirect_to_another_origin() {
    const GITLAB_HOOKS: &str = "/api/v4/projects/mike%2Fweb%2Fdiaspora/hooks";
    const REPO: &str = "git@gitlab.example.invalid:mike/web/diaspora.git";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let elsewhere = PythonPeer::start(
        "provider_api_mock.py",
        &[
            "gitlab",
            TOKEN,
            GITLAB_HOOKS,
            log("elsewhere").to_str().unwrap(),
        ],
    );
    let other_port = format!("http://127.0.0.1:{}", elsewhere.port);
    let other_host = format!("http://localhost:{}", elsewhere.port);
    for (name, to_origin) in [("other-port", &other_port), ("other-host", &other_host)] {
        let moved = PythonPeer::start(
            "provider_api_mock.py",
            &[
                "gitlab",
                TOKEN,
                GITLAB_HOOKS,
                log(name).to_str().unwrap(),
                "/moved",
                to_origin,
            ],
        );
        let api_url = format!("http://127.0.0.1:{}/moved/api/v4", moved.port);
        let (_, printed) = add_service(
            &db,
            name,
            REPO,
            "gitlab",
            "ftp://deploy@127.0.0.1:9/www",
            &["--api-url", &api_url],
            Some(TOKEN),
        );
        let reached = api_requests(&log("elsewhere"));
        assert!(
            reached.is_empty(),
            "the redirect target was reached: {reached:?}"
        );
        let asked = api_requests(&log(name));
        assert_eq!(asked.len(), 1, "only the first request: {asked:?}");
        assert_eq!(header(&asked[0], "PRIVATE-TOKEN"), Some(TOKEN));
        let check = check_line(&printed, "webhook");
        assert!(
            check.starts_with("FAIL")
                && check.contains(&format!("redirected to {to_origin}"))
                && check.contains("--api-url"),
            "{check}"
        );
        assert!(!printed.contains(TOKEN), "{printed}");
    }

    // A redirect within the API's own origin is still followed, token and all.
    let moved = PythonPeer::start(
        "provider_api_mock.py",
        &[
            "gitlab",
            TOKEN,
            GITLAB_HOOKS,
            log("same-origin").to_str().unwrap(),
            "/moved",
        ],
    );
    let api_url = format!("http://127.0.0.1:{}/moved/api/v4", moved.port);
    let (_, printed) = add_service(
        &db,
        "same-origin",
        REPO,
        "gitlab",
        "ftp://deploy@127.0.0.1:9/www",
        &["--api-url", &api_url],
        Some(TOKEN),
    );
    let check = check_line(&printed, "webhook");
    assert!(
        check.starts_with("FAIL") && check.contains("has no webhook"),
        "{check}"
    );
    let asked = api_requests(&log("same-origin"));
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked[1]["path"].as_str().unwrap().starts_with(GITLAB_HOOKS));
    assert_eq!(header(&asked[1], "PRIVATE-TOKEN"), Some(TOKEN));
}

/// Raw connections from one loopback address that send a request a byte at a time, and what the
/// server did with each.
struct SlowClients {
    streams: Vec<SlowStream>,
    last_drip: Instant,
}

struct SlowStream {
    stream: TcpStream,
    received: Vec<u8>,
    closed: bool,
}

/// A connection to `server` from the local address `from` (any 127.0.0.0/8 address reaches
/// the loopback interface, so each stands for another client).
fn connect_from(from: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("cannot bind {from}: {e}"));
    socket.connect(&server.into()).unwrap();
    TcpStream::from(socket)
}

fn server_address(server: &DeployServer) -> SocketAddr {
    server
        .url("")
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap()
}

impl SlowClients {
    /// `count` connections from `from`, each having sent `start` (a request cut short).
    fn open(server: &DeployServer, from: Ipv4Addr, count: usize, start: &[u8]) -> Self {
        let address = server_address(server);
        let streams = (0..count)
            .map(|_| {
                let mut stream = connect_from(from, address);
                stream.write_all(start).unwrap();
                stream.set_nonblocking(true).unwrap();
                SlowStream {
                    stream,
                    received: Vec::new(),
                    closed: false,
                }
            })
            .collect();
        Self {
            streams,
            last_drip: Instant::now(),
        }
    }

    /// Reads what the server sent, notes the connections it closed, and sends each open one
    /// more byte every two seconds.
    fn poll(&mut self) {
        let drip = self.last_drip.elapsed() >= Duration::from_secs(2);
        if drip {
            self.last_drip = Instant::now();
        }
        for slow in self.streams.iter_mut().filter(|s| !s.closed) {
            let mut buffer = [0_u8; 4096];
            loop {
                match slow.stream.read(&mut buffer) {
                    Ok(0) => slow.closed = true,
                    Ok(n) => {
                        slow.received.extend_from_slice(&buffer[..n]);
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => slow.closed = true,
                }
                break;
            }
            if drip && !slow.closed && slow.stream.write_all(b"a").is_err() {
                slow.closed = true;
            }
        }
    }

    /// Polls until `done` holds, failing after `limit` with `what` and the server's log.
    fn wait_until(
        &mut self,
        server: &DeployServer,
        limit: Duration,
        what: &str,
        done: impl Fn(&Self) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            self.poll();
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: after {limit:?}, {} of {} closed, {} answered 503\n{}",
                self.closed(),
                self.streams.len(),
                self.refused(),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn closed(&self) -> usize {
        self.streams.iter().filter(|s| s.closed).count()
    }

    /// Connections answered `503` (over a cap) before they sent a whole request.
    fn refused(&self) -> usize {
        self.streams
            .iter()
            .filter(|s| s.received.starts_with(b"HTTP/1.1 503"))
            .count()
    }

    fn answers(&self) -> Vec<String> {
        self.streams
            .iter()
            .map(|s| String::from_utf8_lossy(&s.received).into_owned())
            .collect()
    }
}

const SLOW_HEADERS: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: deploy.example.com\r\nX-Slow: ";

/// curl from the local address `from`; the status and body.
fn curl_from(from: Ipv4Addr, server: &DeployServer, path: &str) -> (u16, String) {
    curl(&["--interface", &from.to_string(), &server.url(path)])
}

#[test]
fn slow_header_connections_are_capped_per_client_and_closed_by_the_header_timeout() {
    const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    const PER_CLIENT: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    // The defaults: 32 connections per client, 15 s for the headers.
    let server = DeployServer::start(&db, &[]);

    let mut attack = SlowClients::open(&server, ATTACKER, PER_CLIENT + 8, SLOW_HEADERS);
    attack.wait_until(
        &server,
        LIMIT,
        "8 connections over the per-client cap",
        |a| a.refused() == 8,
    );
    assert!(
        attack
            .answers()
            .iter()
            .any(|a| a.contains("too many connections from your address")),
        "{:?}",
        attack.answers()
    );
    // Another client is not held up by them.
    assert_eq!(
        curl_from(NEIGHBOUR, &server, "/healthz"),
        (200, "ok\n".to_owned())
    );

    // An idle kept-alive connection is closed by the same timer.
    let mut idle = connect_from(NEIGHBOUR, server_address(&server));
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: deploy.example.com\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !answer.ends_with(b"ok\n") {
        let n = idle.read(&mut buffer).unwrap();
        assert!(n > 0, "closed before answering: {answer:?}");
        answer.extend_from_slice(&buffer[..n]);
    }
    idle.set_read_timeout(Some(LIMIT)).unwrap();
    let closed = loop {
        match idle.read(&mut buffer) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => {
                use std::io::ErrorKind::{TimedOut, WouldBlock};
                break !matches!(e.kind(), WouldBlock | TimedOut);
            }
        }
    };
    assert!(closed, "an idle kept-alive connection was not closed");

    // The held ones are cut once their headers are overdue, whatever they keep sending.
    attack.wait_until(&server, LIMIT, "every slow connection closed", |a| {
        a.closed() == a.streams.len()
    });
    assert_eq!(
        curl_from(ATTACKER, &server, "/healthz"),
        (200, "ok\n".to_owned())
    );
}

#[test]
fn a_full_connection_cap_answers_503_until_slow_clients_are_cut_and_slow_bodies_get_408() {
    const FIRST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    const SECOND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
    const LATECOMER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>hello</h1>\n");
    repos.commit_and_push("first", "main");
    let key = add_named_service(&db, "site", &repos, "ftp://deploy@127.0.0.1:9/www");
    // Timeouts long enough that the cap is still full when the latecomer comes, whatever the
    // machine's load.
    let server = DeployServer::start(
        &db,
        &[
            "--max-connections",
            "12",
            "--max-connections-per-client",
            "8",
            "--header-timeout",
            "30s",
            "--body-timeout",
            "3s",
        ],
    );

    let mut first = SlowClients::open(&server, FIRST, 8, SLOW_HEADERS);
    let mut second = SlowClients::open(&server, SECOND, 4, SLOW_HEADERS);
    // Both are held (nothing answered), and the thirteenth connection finds the cap full.
    let mut latecomer = SlowClients::open(&server, LATECOMER, 1, SLOW_HEADERS);
    latecomer.wait_until(&server, LIMIT, "the latecomer refused", |l| {
        l.refused() == 1 && l.closed() == 1
    });
    assert!(
        latecomer.answers()[0].contains("too many connections to this service"),
        "{:?}",
        latecomer.answers()
    );
    first.poll();
    second.poll();
    assert_eq!(first.closed() + second.closed(), 0, "{:?}", first.answers());

    // Once the header timeout has cut them, the latecomer gets in.
    let limit = LIMIT + Duration::from_secs(30);
    first.wait_until(&server, limit, "the first client's connections cut", |c| {
        c.closed() == c.streams.len()
    });
    second.wait_until(&server, limit, "the second client's connections cut", |c| {
        c.closed() == c.streams.len()
    });
    assert_eq!(
        curl_from(LATECOMER, &server, "/healthz"),
        (200, "ok\n".to_owned())
    );

    // A webhook whose body trickles in is answered 408 and its connection closed.
    let head = format!(
        "POST /hooks/{key} HTTP/1.1\r\nHost: deploy.example.com\r\nContent-Type: \
         application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: slow-1\r\n\
         X-Hub-Signature-256: sha256={}\r\nContent-Length: 100000\r\n\r\n{{",
        "0".repeat(64)
    );
    let mut slow_body = SlowClients::open(&server, FIRST, 1, head.as_bytes());
    slow_body.wait_until(&server, LIMIT, "the slow body cut", |c| c.closed() == 1);
    let answer = &slow_body.answers()[0];
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("did not arrive within 3 seconds"),
        "{answer}"
    );
    assert!(
        server.log().contains("request body too slow"),
        "{}",
        server.log()
    );
    assert_eq!(
        curl_from(FIRST, &server, "/healthz"),
        (200, "ok\n".to_owned())
    );
}

/// Posts the login form as a browser behind a proxy would: `forwarded_for` is the
/// `X-Forwarded-For` header the proxy (here curl itself) adds. The status: `303` logged in,
/// `401` wrong password, `429` refused unheard.
fn login_from(
    server: &DeployServer,
    dir: &Path,
    user: &str,
    password: &str,
    forwarded_for: &str,
) -> u16 {
    let jar = tempfile::NamedTempFile::new_in(dir).unwrap();
    let jar = jar.path().to_str().unwrap();
    let header = format!("X-Forwarded-For: {forwarded_for}");
    let (status, page) = curl(&["-b", jar, "-c", jar, "-H", &header, &server.url("/login")]);
    assert_eq!(status, 200, "{page}");
    let csrf = format!("csrf={}", page_csrf(&page));
    let user = format!("user={user}");
    let password = format!("password={password}");
    let (status, page) = curl(&[
        "-b",
        jar,
        "-H",
        &header,
        "--data-urlencode",
        &user,
        "--data-urlencode",
        &password,
        "--data-urlencode",
        &csrf,
        &server.url("/login"),
    ]);
    assert!(
        matches!(status, 303 | 401 | 429),
        "{status}: {page}\n{}",
        server.log()
    );
    status
}

/// `attempts` logins at once, each `(user, forwarded_for)` with a wrong password; all must be
/// answered `401`.
fn fail_logins(server: &DeployServer, dir: &Path, attempts: &[(String, &str)]) {
    std::thread::scope(|scope| {
        let runs: Vec<_> = attempts
            .iter()
            .map(|(user, from)| scope.spawn(move || login_from(server, dir, user, "wrong", from)))
            .collect();
        for run in runs {
            assert_eq!(run.join().unwrap(), 401, "{}", server.log());
        }
    });
}

fn wrong_for(user: &str, from: &'static str, times: usize) -> Vec<(String, &'static str)> {
    vec![(user.to_owned(), from); times]
}

#[test]
fn behind_a_trusted_proxy_login_failures_count_per_forwarded_client_and_account() {
    const ATTACKER: &str = "198.51.100.7";
    const ADMIN_DESK: &str = "203.0.113.9";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, "admin", true);
    let server = DeployServer::start_with_env(&db, &[], &[("FERRY_TRUSTED_PROXY", "127.0.0.1/32")]);
    let tmp = dir.path();

    // Five wrong passwords for admin from the attacker's address refuse that pair only.
    fail_logins(&server, tmp, &wrong_for("admin", ATTACKER, 5));
    assert_eq!(login_from(&server, tmp, "admin", PASSWORD, ATTACKER), 429);
    // Writing another address in front does not help: the proxy's entry is the right-most.
    let spoofed = format!("6.6.6.6, {ATTACKER}");
    assert_eq!(login_from(&server, tmp, "admin", PASSWORD, &spoofed), 429);
    assert_eq!(login_from(&server, tmp, "admin", PASSWORD, ADMIN_DESK), 303);
    let log = server.log();
    assert!(
        log.contains(&format!("client={ATTACKER}")) && log.contains("dashboard login failed"),
        "the log names the forwarded client: {log}"
    );
    assert!(log.contains(&format!("client={ADMIN_DESK}")), "{log}");

    // One address trying many accounts is refused for all of them, admin included.
    let sprayer = "198.51.100.8";
    let spray: Vec<(String, &str)> = (0..10).map(|n| (format!("user{n}"), sprayer)).collect();
    fail_logins(&server, tmp, &spray);
    assert_eq!(login_from(&server, tmp, "admin", PASSWORD, sprayer), 429);

    // Many addresses guessing admin slow its logins down, but a right password from a fresh
    // address still gets in.
    let mut guesses = wrong_for("admin", "192.0.2.1", 4);
    guesses.extend(wrong_for("admin", "192.0.2.2", 4));
    guesses.extend(wrong_for("admin", "192.0.2.3", 4));
    fail_logins(&server, tmp, &guesses);
    assert_eq!(
        login_from(&server, tmp, "admin", PASSWORD, "192.0.2.44"),
        303
    );
    assert_eq!(login_from(&server, tmp, "admin", PASSWORD, ADMIN_DESK), 303);
}

#[test]
fn parallel_wrong_passwords_from_one_client_are_counted_before_they_are_checked() {
    const ATTACKER: &str = "198.51.100.9";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, "admin", true);
    let server = DeployServer::start_with_env(&db, &[], &[("FERRY_TRUSTED_PROXY", "127.0.0.1/32")]);
    let tmp = dir.path();
    // Twenty guesses sent at once: five are checked (401), the rest refused unheard (429).
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..20)
            .map(|_| scope.spawn(|| login_from(&server, tmp, "admin", "wrong", ATTACKER)))
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 5, "{statuses:?}\n{}", server.log());
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15);
}

#[test]
fn forwarded_headers_from_a_peer_that_is_not_a_trusted_proxy_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, "admin", true);
    // Trusting another network leaves 127.0.0.1 a plain client.
    let server = DeployServer::start(&db, &["--trusted-proxy", "10.0.0.0/8"]);
    let tmp = dir.path();
    fail_logins(&server, tmp, &wrong_for("admin", "198.51.100.7", 5));
    // Every "forwarded" address is the same client, 127.0.0.1, which failed five times.
    assert_eq!(
        login_from(&server, tmp, "admin", PASSWORD, "203.0.113.9"),
        429
    );
    let log = server.log();
    assert!(log.contains("client=127.0.0.1"), "{log}");
    assert!(!log.contains("198.51.100.7"), "{log}");
}

/// Runs `ferry ARGS` against `db` (with `stdin` as its input) and expects success.
fn ferry_ok(db: &Path, args: &[&str], stdin: &str) {
    let output = run_with_input(&mut ferry(db, args), stdin, LIMIT);
    assert_success(&output);
}

/// What a session cookie in `jar` gets now: the API's status, and where the dashboard's front
/// page sends it (`None`: it is shown).
fn session_answers(server: &DeployServer, dir: &Path, jar: &str) -> (u16, Option<String>) {
    let (api, _) = curl(&["-b", jar, &server.url("/api/services")]);
    let (page, headers, _) = curl_with_headers(dir, &["-b", jar, &server.url("/")]);
    let to = match page {
        200 => None,
        303 => location(&headers),
        other => panic!("GET / answered {other}: {headers}"),
    };
    (api, to)
}

#[test]
fn sessions_end_when_the_password_changes_or_the_admin_flag_goes_and_stay_ended() {
    const NEW_PASSWORD: &str = "a new passphrase";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, "admin", true);
    add_user(&db, "other", true);
    let server = DeployServer::start(&db, &[]);
    let tmp = dir.path();
    let jar = |name: &str| tmp.join(name).to_str().unwrap().to_owned();
    let logged_in = |jar: &str, user: &str, password: &str| {
        let (status, page) = login(&server, Path::new(jar), user, password);
        assert_eq!(status, 200, "{page}");
        assert_eq!(session_answers(&server, tmp, jar), (200, None));
    };
    let ended = |jar: &str| {
        assert_eq!(
            session_answers(&server, tmp, jar),
            (401, Some("/login?next=%2F".to_owned())),
            "{}",
            server.log()
        );
    };

    // A new password ends the sessions made with the old one, on every device; another
    // account's session goes on.
    let (laptop, phone, colleague) = (jar("laptop"), jar("phone"), jar("colleague"));
    logged_in(&laptop, "admin", PASSWORD);
    logged_in(&phone, "admin", PASSWORD);
    logged_in(&colleague, "other", PASSWORD);
    ferry_ok(
        &db,
        &["user", "passwd", "admin", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
    );
    ended(&laptop);
    ended(&phone);
    assert_eq!(session_answers(&server, tmp, &colleague), (200, None));
    logged_in(&laptop, "admin", NEW_PASSWORD);

    // Taking the admin flag away ends them too, and giving it back does not revive them.
    ferry_ok(&db, &["user", "edit", "admin", "--no-admin"], "");
    ended(&laptop);
    ferry_ok(&db, &["user", "edit", "admin", "--admin"], "");
    ended(&laptop);
    logged_in(&laptop, "admin", NEW_PASSWORD);

    // So do disabling the account, and deleting it and making one of the same name.
    ferry_ok(&db, &["user", "edit", "admin", "--disable"], "");
    ferry_ok(&db, &["user", "edit", "admin", "--enable"], "");
    ended(&laptop);
    logged_in(&laptop, "admin", NEW_PASSWORD);
    ferry_ok(&db, &["user", "del", "admin"], "");
    add_user(&db, "admin", true);
    ended(&laptop);

    // API tokens belong to no account: a token works until `deploy token del`, at once.
    let token = add_token(&db, "ci");
    let bearer = format!("Authorization: Bearer {token}");
    let url = server.url("/api/services");
    assert_eq!(curl(&["-H", &bearer, &url]).0, 200);
    ferry_ok(&db, &["deploy", "token", "del", "ci"], "");
    assert_eq!(curl(&["-H", &bearer, &url]).0, 401);
}
