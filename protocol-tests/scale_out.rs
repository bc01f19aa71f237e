//! Stateless nodes: two `ferry serve` processes over one bucket of a real Garage, sharing their
//! accounts through a read-only snapshot. Files go in through one node and come out of the other,
//! through curl, lftp and Python's ftplib, through HAProxy with the PROXY protocol, and from
//! `ferry deploy push`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::dialogue::{Dialogue, free_port_range};
use crate::garage::garage;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(120);

/// A bucket prefix of its own, an admin accounts database, and the nodes started on them.
struct Cluster {
    dir: tempfile::TempDir,
    prefix: String,
}

/// How a node finds the bucket: a `[storage.NAME]` table, or the `s3://` URL of README's
/// three-line setup with the endpoint in the AWS_* environment.
#[derive(Clone, Copy)]
enum Configured {
    Table,
    Url,
}

impl Cluster {
    fn new() -> Self {
        let cluster = Self {
            dir: tempfile::tempdir().unwrap(),
            prefix: garage().new_prefix(),
        };
        cluster.add_user(USER, PASSWORD);
        cluster
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn add_user(&self, name: &str, password: &str) {
        let added = run_with_input(
            &mut ferry_command(
                self.path(),
                &["--db", "admin.db", "user", "add", name, "--password-stdin"],
            ),
            password,
            LIMIT,
        );
        assert_success(&added);
    }

    /// Starts node `name` on a fresh snapshot of the admin database, with `args` added.
    fn node(&self, name: &str, configured: Configured, args: &[&str]) -> FerryServe {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let snapshot = dir.join("accounts.db");
        assert_success(&run_with_timeout(
            ferry_command(self.path(), &["--db", "admin.db", "accounts", "snapshot"])
                .arg(&snapshot),
            LIMIT,
        ));
        let garage = garage();
        let mut all = vec![
            "--db",
            "accounts.db",
            "serve",
            "127.0.0.1:0",
            "--accounts-read-only",
        ];
        let url = format!("s3://{}/{}", garage.bucket, self.prefix);
        match configured {
            Configured::Table => {
                std::fs::write(
                    dir.join("ferry.toml"),
                    format!(
                        "[storage.shared]\nbackend = \"s3\"\nbucket = \"{}\"\nprefix = \"{}\"\n\
                         endpoint = \"{}\"\nregion = \"{}\"\npath_style = true\n\
                         allow_http = true\nrename_dir_limit = 3\n",
                        garage.bucket, self.prefix, garage.endpoint, garage.region
                    ),
                )
                .unwrap();
                all.extend(["--config", "ferry.toml", "--storage", "shared"]);
            }
            Configured::Url => all.extend(["--storage", &url]),
        }
        all.extend_from_slice(args);
        let mut command = ferry_command(&dir, &all);
        command
            .env("AWS_ACCESS_KEY_ID", &garage.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &garage.secret);
        if let Configured::Url = configured {
            command
                .env("AWS_ENDPOINT_URL", &garage.endpoint)
                .env("AWS_REGION", &garage.region);
        }
        FerryServe::start(&mut command)
    }
}

fn curl() -> Command {
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--fail", "--max-time", "120"]);
    command
}

fn url(node: &FerryServe, path: &str) -> String {
    format!(
        "ftp://{USER}:{}@{}{path}",
        PASSWORD.replace(' ', "%20"),
        node.addr
    )
}

#[track_caller]
fn run_ok(command: &mut Command) -> Output {
    let output = run_with_timeout(command, LIMIT);
    assert_success(&output);
    output
}

fn lftp(node: &FerryServe, script: &str) -> Output {
    let commands = format!(
        "set cmd:fail-exit yes; set ftp:ssl-allow no; set net:max-retries 2; \
         set net:timeout 30; set xfer:clobber on; \
         open -u '{USER},{PASSWORD}' -p {} 127.0.0.1; {script}",
        node.addr.port()
    );
    run_with_timeout(Command::new("lftp").arg("-c").arg(commands), LIMIT)
}

fn login(node: &FerryServe) -> Dialogue {
    let mut ftp = node.connect();
    ftp.expect(&format!("USER {USER}"), 331);
    ftp.expect(&format!("PASS {PASSWORD}"), 230);
    ftp.expect("TYPE I", 200);
    ftp
}

#[test]
fn two_nodes_over_one_bucket_serve_the_same_files_to_curl_lftp_and_ftplib() {
    let cluster = Cluster::new();
    let a = cluster.node("a", Configured::Table, &[]);
    let b = cluster.node("b", Configured::Url, &[]);
    let work = cluster.path();

    // curl: a 20 MiB file (several multipart parts) up through A, down through B, whole and
    // resumed from an offset.
    let big = work.join("big.bin");
    write_pattern_file(&big, 20 * 1024 * 1024 + 17, 8);
    run_ok(
        curl()
            .arg("--ftp-create-dirs")
            .arg("-T")
            .arg(&big)
            .arg(url(&a, "/site/media/big.bin")),
    );
    let down = work.join("big.down");
    run_ok(
        curl()
            .arg("-o")
            .arg(&down)
            .arg(url(&b, "/site/media/big.bin")),
    );
    assert_eq!(sha256_file(&down), sha256_file(&big));
    let tail = run_ok(
        curl()
            .args(["-r", "20971000-"])
            .arg(url(&b, "/site/media/big.bin")),
    )
    .stdout;
    assert_eq!(tail, std::fs::read(&big).unwrap()[20_971_000..]);

    // lftp: a tree with nested, empty and oddly named directories up through B.
    let local = work.join("upload");
    for (path, content) in [
        ("index.html", &b"<h1>home</h1>"[..]),
        ("css/site.css", b"body { margin: 0 }"),
        ("docs/with space/résumé.txt", "café".as_bytes()),
        ("docs/deep/er/still.txt", b"deeper"),
    ] {
        let full = local.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    std::fs::create_dir_all(local.join("empty")).unwrap();
    let mirrored = lftp(
        &b,
        &format!("mirror -R --no-perms {} /site/tree", local.display()),
    );
    assert_success(&mirrored);

    // ftplib: the whole tree down through A, walked with MLSD.
    let scratch = work.join("ftplib");
    std::fs::create_dir_all(&scratch).unwrap();
    let walked = run_with_timeout(
        Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/protocol-tests/python/ftplib_client.py"
            ))
            .args(["mirror_down", &a.addr.port().to_string(), USER, PASSWORD])
            .arg(&scratch),
        LIMIT,
    );
    assert_success(&walked);
    let mut expected: std::collections::BTreeMap<String, Vec<u8>> = read_tree(&local)
        .0
        .into_iter()
        .map(|(path, content)| (format!("tree/{path}"), content))
        .collect();
    expected.insert("media/big.bin".into(), std::fs::read(&big).unwrap());
    let (got, _) = read_tree(&scratch.join("down"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, content) in &expected {
        assert!(got[path] == *content, "{path} differs");
    }
    // The empty directory exists on both nodes (a `dir/` marker), and goes on both.
    let mut on_a = login(&a);
    let listing = on_a.download("MLSD /site/tree").0;
    let listing = String::from_utf8(listing).unwrap();
    assert!(
        listing.contains("type=dir;") && listing.contains(" empty\r\n"),
        "{listing}"
    );
    let mut on_b = login(&b);
    on_b.expect("RMD /site/tree/empty", 250);
    on_a.expect("CWD /site/tree/empty", 550);
    on_a.expect("MKD /site/made-on-a", 257);
    on_b.expect("CWD /site/made-on-a", 250);
    on_b.expect("RNFR /site/tree/index.html", 350);
    on_b.expect("RNTO /site/index.html", 250);
    let (index, done) = on_a.download("RETR /site/index.html");
    assert_eq!(done.code, 226);
    assert_eq!(index, b"<h1>home</h1>");
}

#[test]
fn object_storage_says_what_it_cannot_do_and_never_shows_half_an_upload() {
    let cluster = Cluster::new();
    let a = cluster.node("a", Configured::Table, &[]);
    let b = cluster.node("b", Configured::Table, &[]);
    let mut ftp = login(&a);

    let feat = ftp.expect("FEAT", 211).text();
    assert!(feat.contains(" REST STREAM"), "downloads resume: {feat}");
    assert!(!feat.contains("MFMT"), "no settable times on S3: {feat}");
    let help = ftp.expect("HELP APPE", 214);
    assert!(help.text().contains("cannot append"), "{help:?}");
    let help = ftp.expect("HELP RETR", 214);
    assert!(help.text().contains("RETR is supported"), "{help:?}");
    assert_eq!(ftp.upload("STOR log.txt", b"one\n").1.code, 226);
    let _data = ftp.pasv_connect();
    let refused = ftp.expect("APPE log.txt", 502);
    assert!(
        refused.text().contains("upload the whole file"),
        "{refused:?}"
    );
    ftp.expect("REST 2", 350);
    let refused = ftp.command("STOR log.txt");
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(refused.text().contains("STOR without REST"), "{refused:?}");
    ftp.expect("MFMT 20200101000000 log.txt", 502);

    // A directory of more objects than the configured limit (3) is not renamed half-way.
    ftp.expect("MKD big", 257);
    for index in 0..4 {
        assert_eq!(
            ftp.upload(&format!("STOR big/{index}.txt"), b"x").1.code,
            226
        );
    }
    ftp.expect("RNFR big", 350);
    let refused = ftp.expect("RNTO renamed", 550);
    assert!(refused.text().contains("rename_dir_limit"), "{refused:?}");
    ftp.expect("MKD small", 257);
    assert_eq!(ftp.upload("STOR small/only.txt", b"small").1.code, 226);
    ftp.expect("RNFR small", 350);
    ftp.expect("RNTO moved", 250);
    let (moved, _) = login(&b).download("RETR moved/only.txt");
    assert_eq!(moved, b"small");

    // A client killed in the middle of a 12 MiB upload: the other node never sees the file.
    let stream = ftp.pasv_connect();
    ftp.send("STOR partial.bin");
    assert_eq!(ftp.reply().code, 150);
    let mut data = stream;
    let chunk = vec![7u8; 1024 * 1024];
    for _ in 0..12 {
        data.write_all(&chunk).unwrap();
    }
    // A reset, not a clean end: the upload failed.
    socket2::SockRef::from(&data)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(data);
    drop(ftp);
    let mut other = login(&b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let names = String::from_utf8(other.download("NLST").0).unwrap();
        assert!(!names.contains("partial.bin"), "{names}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn nodes_behind_haproxy_serve_each_data_connection_from_the_node_of_its_session() {
    let cluster = Cluster::new();
    // Each node has its own passive ports; the balancer carries control connections to either
    // node (with a PROXY v2 header naming the client) and each node's passive range to that node
    // alone, so a data connection always reaches the node of its session. Both nodes announce
    // the balancer's address.
    let bounds = |ports: &ferry::server::PortRanges| {
        let text = ports.to_string();
        let (low, high) = text.split_once('-').unwrap();
        (low.parse::<u16>().unwrap(), high.parse::<u16>().unwrap())
    };
    let ports_a = free_port_range(4);
    let ports_b = loop {
        let candidate = free_port_range(4);
        let ((a_low, a_high), (b_low, b_high)) = (bounds(&ports_a), bounds(&candidate));
        if b_high < a_low || b_low > a_high {
            break candidate;
        }
    };
    let node = |name: &str, ports: &str| {
        cluster.node(
            name,
            Configured::Table,
            &[
                "--proxy-protocol-from",
                "127.0.0.9/32",
                "--passive-ports",
                ports,
                "--masquerade-address",
                "127.0.0.5",
            ],
        )
    };
    let a = node("a", &ports_a.to_string());
    let b = node("b", &ports_b.to_string());
    let front = std::net::TcpListener::bind("127.0.0.5:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let range = |ports: &ferry::server::PortRanges| ports.to_string();
    let config = cluster.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n  maxconn 100\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend ftp\n  bind 127.0.0.5:{front}\n  default_backend nodes\n\
             backend nodes\n  balance roundrobin\n  source 127.0.0.9\n\
             \x20 server a {} send-proxy-v2\n  server b {} send-proxy-v2\n\
             frontend passive_a\n  bind 127.0.0.5:{}\n  default_backend data_a\n\
             backend data_a\n  source 127.0.0.9\n  server a 127.0.0.1\n\
             frontend passive_b\n  bind 127.0.0.5:{}\n  default_backend data_b\n\
             backend data_b\n  source 127.0.0.9\n  server b 127.0.0.1\n",
            a.addr,
            b.addr,
            range(&ports_a),
            range(&ports_b),
        ),
    )
    .unwrap();
    let front: SocketAddr = format!("127.0.0.5:{front}").parse().unwrap();
    let _haproxy = Haproxy::start(&config, front);

    // Four sessions through the balancer from 127.0.0.7: two land on each node, and every
    // data connection (curl opens them to the announced address) reaches its own node.
    let source = cluster.path().join("source.bin");
    write_pattern_file(&source, 3 * 1024 * 1024, 5);
    let via_front = |path: &str| {
        format!(
            "ftp://{USER}:{}@{front}{path}",
            PASSWORD.replace(' ', "%20")
        )
    };
    for index in 0..4 {
        run_ok(
            curl()
                .args(["--interface", "127.0.0.7", "-T"])
                .arg(&source)
                .arg(via_front(&format!("/up-{index}.bin"))),
        );
    }
    for index in 0..4 {
        let down = cluster.path().join(format!("down-{index}.bin"));
        run_ok(
            curl()
                .args(["--interface", "127.0.0.7", "-o"])
                .arg(&down)
                .arg(via_front(&format!("/up-{index}.bin"))),
        );
        assert_eq!(sha256_file(&down), sha256_file(&source));
    }
    for node in [&a, &b] {
        let log = node.log();
        let sessions = log.matches("logged in").count();
        assert!(sessions >= 2, "each node served its share:\n{log}");
        assert!(log.contains("peer=127.0.0.7:"), "{log}");
        assert!(log.contains("balancer=127.0.0.9:"), "{log}");
    }
}

#[test]
fn a_deploy_to_one_node_over_object_storage_is_served_by_the_other() {
    let cluster = Cluster::new();
    let a = cluster.node("a", Configured::Table, &[]);
    let b = cluster.node("b", Configured::Table, &[]);
    let repo = cluster.path().join("repo");
    std::fs::create_dir_all(repo.join("assets")).unwrap();
    std::fs::write(repo.join("index.html"), "<h1>deployed</h1>").unwrap();
    std::fs::write(repo.join("assets/app.js"), "console.log(1)").unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=Deploy",
            "-c",
            "user.email=deploy@example.com",
            "commit",
            "-q",
            "-m",
            "site",
        ],
    ] {
        let output = run_with_timeout(
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null"),
            LIMIT,
        );
        assert_success(&output);
    }
    let target = format!("ftp://{USER}@{}/www", a.addr);
    let pushed = run_with_timeout(
        ferry_command(cluster.path(), &["deploy", "push"])
            .arg(&repo)
            .args(["--to", &target])
            .env("FERRY_FTP_PASSWORD", PASSWORD),
        LIMIT,
    );
    assert_success(&pushed);
    let mut ftp = login(&b);
    assert_eq!(ftp.download("RETR /www/index.html").0, b"<h1>deployed</h1>");
    assert_eq!(ftp.download("RETR /www/assets/app.js").0, b"console.log(1)");
    let names = String::from_utf8(ftp.download("NLST /www").0).unwrap();
    assert!(names.contains(".ferry-deploy.json"), "the marker: {names}");
    // Nothing of the deploy's temporary names is left behind.
    assert_eq!(names.lines().count(), 3, "{names}");
}
