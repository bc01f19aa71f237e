//! What an operator meets on the first try, driven as they drive it: the `ferry` commands as
//! processes, `deploy serve` over HTTP, against a real ferry FTP server.

use std::path::Path;

use crate::deploy_serve::{LIMIT, Repos, ferry};
use crate::support::*;

/// An account of the FTP server `ftp` with `perms`, whose home is [`USER`]'s.
fn add_ftp_account(ftp: &TestServer, name: &str, perms: &str) {
    let output = run_with_input(
        &mut ferry(
            &ftp.db_path(),
            &[
                "user",
                "add",
                name,
                "--home",
                USER,
                "--perms",
                perms,
                "--password-stdin",
            ],
        ),
        PASSWORD,
        LIMIT,
    );
    assert_success(&output);
}

/// The names in `dir` that a deploy or a validation uses for itself.
fn leftovers(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".ferry-tmp.") || name.starts_with(".ferry-validate"))
        .collect()
}

#[test]
fn validation_tries_what_a_deploy_does_and_a_failed_deploy_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    repos.write("index.html", b"<h1>site</h1>\n");
    repos.write("css/site.css", b"body { margin: 0 }\n");
    repos.commit_and_push("site", "main");
    let ftp = TestServer::start();
    // May upload, list, delete and make directories, but not rename.
    add_ftp_account(&ftp, "norename", "elradmw");
    let www = ftp.home().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), b"old\n").unwrap();
    let to = format!("ftp://norename@127.0.0.1:{}/www", ftp.port());

    let output = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "add",
                "site",
                "--repo",
                repos.bare.to_str().unwrap(),
                "--branch",
                "main",
                "--to",
                &to,
                "--provider",
                "git",
                "--password-stdin",
            ],
        ),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("write access"))
        .unwrap_or_else(|| panic!("the missing rename permission is found:\n{stdout}"));
    assert!(
        line.contains("renaming") && line.contains("rename permission"),
        "the failing step is named: {line}"
    );
    assert_eq!(
        leftovers(&www),
        Vec::<String>::new(),
        "validation cleans up"
    );

    // A missing target directory is tried too, and left as it was.
    let missing = format!("ftp://{USER}@127.0.0.1:{}/new/site", ftp.port());
    let output = run_with_input(
        &mut ferry(
            &db,
            &[
                "deploy",
                "service",
                "edit",
                "site",
                "--to",
                &missing,
                "--password-stdin",
            ],
        ),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("write access")),
        "{stdout}"
    );
    assert!(
        !ftp.home().join("new").exists(),
        "the directories validation made are gone"
    );

    // A deploy by the same account fails on its first rename and takes its temporary files
    // with it; the old page is untouched.
    let output = run_with_input(
        std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .env("FERRY_STATE_DIR", dir.path().join("state"))
            .args([
                "deploy",
                "push",
                repos.work.to_str().unwrap(),
                "--to",
                &to,
                "--password-stdin",
                "--jobs",
                "2",
            ]),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert_eq!(leftovers(&www), Vec::<String>::new());
    assert_eq!(leftovers(&www.join("css")), Vec::<String>::new());
    assert_eq!(std::fs::read(www.join("index.html")).unwrap(), b"old\n");
}

#[test]
fn a_reader_that_goes_away_ends_a_listing_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    for n in 0..3 {
        assert_success(&run_with_timeout(
            &mut ferry(&db, &["deploy", "token", "add", &format!("t{n}")]),
            LIMIT,
        ));
    }
    // `ferry deploy token list | head -0`: the pipe is closed before anything is written.
    for args in [
        &["deploy", "token", "list"][..],
        &["deploy", "log"],
        &["user", "list"],
    ] {
        let mut child = ferry(&db, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn a_typo_in_the_database_path_creates_nothing_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.db");
    for args in [
        &["user", "list"][..],
        &["group", "list"],
        &["user", "del", "bob"],
        &["deploy", "service", "list"],
        &["deploy", "log"],
        &["deploy", "token", "list"],
        &["deploy", "notify", "list"],
    ] {
        let output = run_with_timeout(&mut ferry(&typo, args), LIMIT);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("there is no database at") && stderr.contains("typo"),
            "{args:?}: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
    // A database in a directory that does not exist: the reason once, not three times.
    let output = run_with_input(
        &mut ferry(
            &dir.path().join("missing/ferry.db"),
            &["user", "add", "bob", "--password-stdin"],
        ),
        "pw\n",
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("cannot open").count(), 1, "{stderr}");
    // `user passwd` without the flag shows `user passwd`, not `user add`.
    let db = dir.path().join("ferry.db");
    assert_success(&run_with_input(
        &mut ferry(&db, &["user", "add", "bob", "--password-stdin"]),
        "pw\n",
        LIMIT,
    ));
    let output = run_with_timeout(&mut ferry(&db, &["user", "passwd", "bob"]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "a usage error: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ferry user passwd NAME --password-stdin"),
        "{stderr}"
    );
    // Listing the deploy services makes no key file.
    assert_success(&run_with_timeout(
        &mut ferry(&db, &["deploy", "service", "list"]),
        LIMIT,
    ));
    assert!(!dir.path().join("ferry.db.secret-key").exists());
}

#[test]
fn a_deploy_to_an_implicit_tls_port_without_it_says_to_use_ftps_implicit() {
    let ftp = TestServer::start_with_implicit_tls(|_, _| {});
    let implicit = ftp.implicit_addr.unwrap();
    let repo = tempfile::tempdir().unwrap();
    let repos = Repos::new(repo.path());
    repos.write("index.html", b"x\n");
    repos.commit_and_push("x", "main");
    let output = run_with_input(
        std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .env("FERRY_STATE_DIR", repo.path().join("state"))
            .args([
                "deploy",
                "push",
                repos.work.to_str().unwrap(),
                "--to",
                &format!("ftps://{USER}@localhost:{}/www", implicit.port()),
                "--password-stdin",
            ]),
        &format!("{PASSWORD}\n"),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sent no FTP greeting") && stderr.contains("use ftps-implicit://"),
        "{stderr}"
    );
}

/// `ferry --db DB user add NAME` with [`PASSWORD`] on standard input.
fn add_user(db: &Path, name: &str, extra: &[&str]) {
    let mut args = vec!["user", "add", name];
    args.extend_from_slice(extra);
    args.push("--password-stdin");
    assert_success(&run_with_input(&mut ferry(db, &args), PASSWORD, LIMIT));
}

/// `ferry --db DB serve 127.0.0.1:0 --root homes` in `dir`.
fn serve_on(dir: &Path, db: &Path, extra: &[&str]) -> FerryServe {
    let homes = dir.join("homes");
    std::fs::create_dir_all(&homes).unwrap();
    let mut args = vec!["serve", "127.0.0.1:0", "--root"];
    let homes = homes.to_str().unwrap().to_owned();
    args.push(&homes);
    args.extend_from_slice(extra);
    let mut command = ferry(db, &args);
    command.current_dir(dir);
    FerryServe::start(&mut command)
}

#[test]
fn five_wrong_passwords_lock_out_one_account_at_one_address_until_a_time_the_421_names_and_ferry_ban_lift_ends_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, USER, &[]);
    add_user(&db, READER, &[]);
    let server = serve_on(dir.path(), &db, &[]);

    let mut guesser = server.connect();
    let mut last = None;
    for guess in 1..=5 {
        guesser.expect(&format!("USER {USER}"), 331);
        let reply = guesser.command(&format!("PASS wrong guess {guess}"));
        if guess < 5 {
            assert_eq!(reply.lines, ["530 Login incorrect."]);
        }
        last = Some(reply);
    }
    let banned = last.unwrap();
    assert_eq!(banned.code, 421, "{banned:?}");
    let text = banned.text();
    assert!(
        text.contains("Too many failed logins for this account from your address")
            && text.contains("until 20")
            && text.contains(" UTC"),
        "{text}"
    );

    // Another account from the same address logs in with its password...
    let mut colleague = server.connect();
    colleague.log_in(READER);
    colleague.expect("QUIT", 221);
    // ...the locked-out account does not, even with the right one, and hears why and until when.
    let mut owner = server.connect();
    owner.expect(&format!("USER {USER}"), 331);
    let refused = owner.command(&format!("PASS {PASSWORD}"));
    assert_eq!(refused.code, 421, "{refused:?}");
    assert!(refused.text().contains("until 20"), "{refused:?}");

    // The running server's bans, read and lifted from the command line.
    let listed = run_with_timeout(&mut ferry(&db, &["ban", "list"]), LIMIT);
    assert_success(&listed);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let row = listed
        .lines()
        .find(|line| line.starts_with("127.0.0.1 "))
        .unwrap_or_else(|| panic!("no ban on 127.0.0.1 in:\n{listed}"));
    assert!(row.contains(USER) && row.contains(" UTC"), "{row}");
    assert!(!listed.contains(READER), "{listed}");

    let lifted = run_with_timeout(&mut ferry(&db, &["ban", "lift", "127.0.0.1"]), LIMIT);
    assert_success(&lifted);
    let lifted = String::from_utf8_lossy(&lifted.stdout).into_owned();
    assert!(
        lifted.contains("lifted: 127.0.0.1 account alice"),
        "{lifted}"
    );
    let mut owner = server.connect();
    owner.log_in(USER);
    let listed = run_with_timeout(&mut ferry(&db, &["ban", "list"]), LIMIT);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("no bans"),
        "{listed:?}"
    );
    assert!(server.log().contains("login bans lifted by the operator"));

    // A typo is a usage error; no server is an error that says what to start.
    let typo = run_with_timeout(&mut ferry(&db, &["ban", "lift", "127.0.0"]), LIMIT);
    assert_eq!(typo.status.code(), Some(2), "{typo:?}");
    let elsewhere = run_with_timeout(
        &mut ferry(&dir.path().join("other.db"), &["ban", "list"]),
        LIMIT,
    );
    assert_eq!(elsewhere.status.code(), Some(1), "{elsewhere:?}");
    let stderr = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(
        stderr.contains("cannot reach the running server's admin socket")
            && stderr.contains("ferry serve"),
        "{stderr}"
    );
}

#[test]
fn the_admin_socket_is_its_owners_alone_and_goes_with_the_server() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, USER, &[]);
    let server = serve_on(dir.path(), &db, &[]);
    let socket = dir.path().join("ferry.db.admin.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert!(server.log().contains("admin socket for `ferry ban`"));
    assert!(server.terminate().success());
    assert!(!socket.exists(), "a stopped server leaves no socket behind");
}

/// `ferry --db DB ARGS`: its exit code, standard output and standard error.
fn run(db: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = run_with_timeout(&mut ferry(db, args), LIMIT);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The value `ferry user show NAME` prints for `key`.
fn shown(db: &Path, name: &str, key: &str) -> String {
    let (code, out, err) = run(db, &["user", "show", name]);
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: in\n{out}"))
        .trim()
        .to_owned()
}

/// Logs in as `user` with [`PASSWORD`]; the reply to PASS.
fn ftp_login(server: &FerryServe, user: &str) -> u16 {
    let mut ftp = server.connect();
    ftp.expect(&format!("USER {user}"), 331);
    ftp.command(&format!("PASS {PASSWORD}")).code
}

#[test]
fn user_show_and_edit_reach_every_setting_and_group_edit_and_del_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let (code, _, err) = run(
        &db,
        &["group", "add", "web", "--home", "site", "--perms", "elr"],
    );
    assert_eq!(code, Some(0), "{err}");
    add_user(&db, "carol", &["--group", "web"]);
    assert_eq!(shown(&db, "carol", "home"), "site (the group's)");
    assert_eq!(shown(&db, "carol", "permissions"), "elr (the group's)");
    assert_eq!(shown(&db, "carol", "expires"), "never");
    assert_eq!(shown(&db, "carol", "ftp"), "yes");

    let (code, out, err) = run(
        &db,
        &[
            "user",
            "edit",
            "carol",
            "--home",
            "own",
            "--perms",
            "elradfmw",
            "--tls-required",
            "data",
            "--storage",
            "archive",
            "--expires",
            "2999-12-31",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("user carol changed"), "{out}");
    assert_eq!(shown(&db, "carol", "home"), "own");
    assert_eq!(shown(&db, "carol", "permissions"), "elradfmw");
    assert_eq!(shown(&db, "carol", "tls required"), "data");
    assert_eq!(shown(&db, "carol", "storage"), "archive");
    assert!(shown(&db, "carol", "expires").starts_with("2999-12-31"));

    let (code, _, err) = run(
        &db,
        &[
            "user",
            "edit",
            "carol",
            "--inherit-home",
            "--inherit-perms",
            "--no-group",
            "--inherit-tls-required",
            "--inherit-storage",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(shown(&db, "carol", "group"), "-");
    assert_eq!(shown(&db, "carol", "home"), "carol (default)");
    assert_eq!(shown(&db, "carol", "permissions"), "elradfmwMT (default)");
    assert_eq!(shown(&db, "carol", "storage"), "the server's (default)");

    // Bad values are usage errors (2) naming the flag; nothing is half-changed.
    for (args, says) in [
        (&["--perms", "elrz"][..], "--perms: "),
        (&["--expires", "2026-02-30"], "--expires: invalid date"),
        (&["--tls-required", "sometimes"], "--tls-required: "),
        (
            &["--home", "own", "--group", "missing"],
            "no group named missing",
        ),
        (&[], "nothing to change"),
    ] {
        let mut full = vec!["user", "edit", "carol"];
        full.extend_from_slice(args);
        let (code, _, err) = run(&db, &full);
        let expected = if says.starts_with("no group") { 1 } else { 2 };
        assert_eq!(code, Some(expected), "{args:?}: {err}");
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert_eq!(shown(&db, "carol", "home"), "carol (default)", "{args:?}");
    }
    let (code, _, err) = run(&db, &["user", "show", "nobody"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no user named nobody"), "{err}");

    // Groups: edit, refuse to delete one in use, delete one no account uses.
    let (code, _, err) = run(
        &db,
        &[
            "group", "edit", "web", "--home", "shared", "--perms", "elrw",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = run(&db, &["group", "list"]);
    let row = out.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(row.contains("elrw") && row.ends_with("shared"), "{row}");
    let (code, _, err) = run(&db, &["group", "edit", "web"]);
    assert_eq!(code, Some(2), "{err}");
    add_user(&db, "dave", &["--group", "web"]);
    let (code, _, err) = run(&db, &["group", "del", "web"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("still has accounts (dave)"), "{err}");
    let (code, _, _) = run(&db, &["user", "edit", "dave", "--no-group"]);
    assert_eq!(code, Some(0));
    let (code, out, _) = run(&db, &["group", "del", "web"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("group web deleted"), "{out}");

    // Expiry and FTP access, live on a running server.
    let server = serve_on(dir.path(), &db, &[]);
    std::fs::create_dir_all(dir.path().join("homes/carol")).unwrap();
    assert_eq!(ftp_login(&server, "carol"), 230);
    run(&db, &["user", "edit", "carol", "--expires", "2020-01-01"]);
    assert!(shown(&db, "carol", "expires").contains("expired"));
    assert_eq!(ftp_login(&server, "carol"), 530);
    run(
        &db,
        &[
            "user",
            "edit",
            "carol",
            "--no-expiry",
            "--no-ftp",
            "--admin",
        ],
    );
    assert_eq!(shown(&db, "carol", "ftp"), "no (dashboard only)");
    assert_eq!(ftp_login(&server, "carol"), 530);
    run(&db, &["user", "edit", "carol", "--ftp", "--disable"]);
    assert_eq!(ftp_login(&server, "carol"), 530);
    run(&db, &["user", "edit", "carol", "--enable"]);
    assert_eq!(ftp_login(&server, "carol"), 230);
}

#[test]
fn certs_dev_writes_a_private_key_and_keeps_an_existing_pair_unless_forced() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs_arg = certs.to_str().unwrap();
    let db = dir.path().join("unused.db");
    let (code, out, err) = run(&db, &["certs", "dev", "--dir", certs_arg]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("key.pem"), "{out}");
    let key = certs.join("key.pem");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    let first = std::fs::read(&key).unwrap();

    let (code, _, err) = run(&db, &["certs", "dev", "--dir", certs_arg]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already exists; pass --force"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), first, "the pair is kept");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&db, &["certs", "dev", "--dir", certs_arg, "--force"]);
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(std::fs::read(&key).unwrap(), first, "a new pair");
    assert_eq!(mode(&key), 0o600, "a replaced key is private too");
}

#[test]
fn serve_listens_on_a_host_name_and_says_what_it_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let start = || {
        let mut command = ferry(&db, &["serve", "localhost:0", "--root", "missing/dir"]);
        command.current_dir(dir.path());
        FerryServe::start(&mut command)
    };
    let server = start();
    let log = server.log();
    assert!(
        log.contains("created a new accounts database") && log.contains("new.db"),
        "{log}"
    );
    assert!(
        log.contains("created the FTP root directory") && log.contains("missing/dir"),
        "{log}"
    );
    assert!(dir.path().join("missing/dir").is_dir());
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    drop(server.connect());
    assert!(server.terminate().success());
    // Started again, there is nothing new to say.
    let again = start();
    assert!(!again.log().contains("created"), "{}", again.log());
    drop(again);

    // An address it cannot use is a usage error that shows the forms it takes.
    for listen in ["nowhere", "localhost:port", "no-such-host.invalid:21"] {
        let (code, _, err) = run(&db, &["serve", listen]);
        assert_eq!(code, Some(2), "{listen}: {err}");
        assert!(
            err.contains("localhost:2121") && !err.contains("panicked"),
            "{listen}: {err}"
        );
    }
}

/// `ferry ARGS --help`.
fn help(args: &[&str]) -> String {
    let mut command = ferry(Path::new("unused.db"), args);
    command.arg("--help");
    let output = run_with_timeout(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The lines of a help text's `NAME:` section.
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|line| *line != name)
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect()
}

/// Every command that has no subcommands, as the words that name it.
fn leaf_commands(prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let args: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let text = help(&args);
    let subcommands: Vec<String> = section(&text, "Commands:")
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| *word != "help")
        .map(str::to_owned)
        .collect();
    if subcommands.is_empty() {
        out.push(prefix);
        return;
    }
    for sub in subcommands {
        let mut next = prefix.clone();
        next.push(sub);
        leaf_commands(next, out);
    }
}

#[test]
fn every_positional_argument_is_described_and_serve_shows_its_defaults() {
    let mut leaves = Vec::new();
    leaf_commands(Vec::new(), &mut leaves);
    assert!(leaves.len() > 30, "{leaves:?}");
    for leaf in &leaves {
        let args: Vec<&str> = leaf.iter().map(String::as_str).collect();
        let text = help(&args);
        for line in section(&text, "Arguments:") {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                words.len() > 1,
                "`ferry {}`: {line:?} is not described",
                leaf.join(" ")
            );
        }
    }
    // Every `serve` setting that takes a value says what it is when not given (the key file
    // goes with the certificate, whose line says it).
    let text = help(&["serve"]);
    let options = section(&text, "Options:");
    let mut entries: Vec<String> = Vec::new();
    for line in options {
        if line.trim_start().starts_with('-') {
            entries.push(line.to_owned());
        } else if let Some(last) = entries.last_mut() {
            last.push_str(line);
        }
    }
    for entry in entries
        .iter()
        .filter(|e| e.contains(" <") && !e.contains("--keyfile"))
    {
        assert!(entry.contains("[default"), "no default shown: {entry}");
    }
    assert!(
        text.contains("[default: 127.0.0.1:2121]") && text.contains("[default: ./ferry.db]"),
        "{text}"
    );
}
