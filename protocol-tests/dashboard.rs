//! The deploy dashboard in a real browser: Debian's headless chromium, driven over WebDriver by
//! chromedriver (the `fantoccini` client), against the real `ferry deploy serve` deploying a real
//! git repository onto a real ferry FTP server, pushes announced by GitHub-signed webhooks. One
//! browser session walks through every page; each page's screenshot is saved under
//! `target/dashboard-screenshots/`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::deploy_serve::{
    DeployServer, LIMIT, Repos, SECRET, add_user, api_curl, assert_target_is, curl, get_json,
    post_hook, push_body, queued_id, wait_for_deploy,
};
use crate::support::*;

const FILES: usize = 12;
const HELD_AFTER: usize = 3;

/// A control-connection proxy in front of the FTP server. Armed, it lets `pass` STOR commands
/// through and holds the next ones (the deploy stalls part-way, its progress visible) until
/// released, then forwards them: the deploy completes.
struct StorGate {
    addr: SocketAddr,
    pass: Arc<AtomicUsize>,
    stors: Arc<AtomicUsize>,
    held: Arc<AtomicBool>,
}

impl StorGate {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Self {
            addr,
            pass: Arc::new(AtomicUsize::new(usize::MAX)),
            stors: Arc::new(AtomicUsize::new(0)),
            held: Arc::new(AtomicBool::new(false)),
        };
        let (pass, stors, held) = (
            Arc::clone(&gate.pass),
            Arc::clone(&gate.stors),
            Arc::clone(&gate.held),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(mut server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut server_read = server.try_clone().unwrap();
                let mut client_write = client.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = client_write.shutdown(std::net::Shutdown::Both);
                });
                let (pass, stors, held) =
                    (Arc::clone(&pass), Arc::clone(&stors), Arc::clone(&held));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client);
                    loop {
                        let mut line = Vec::new();
                        match reader.read_until(b'\n', &mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"STOR ") {
                            let count = stors.fetch_add(1, Ordering::SeqCst) + 1;
                            if count > pass.load(Ordering::SeqCst) {
                                held.store(true, Ordering::SeqCst);
                                while pass.load(Ordering::SeqCst) != usize::MAX {
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                            }
                        }
                        if server.write_all(&line).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        gate
    }

    /// From now on, hold every STOR after the first `pass`.
    fn arm(&self, pass: usize) {
        self.stors.store(0, Ordering::SeqCst);
        self.held.store(false, Ordering::SeqCst);
        self.pass.store(pass, Ordering::SeqCst);
    }

    fn release(&self) {
        self.pass.store(usize::MAX, Ordering::SeqCst);
    }
}

/// chromedriver on a free port, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt install chromium-driver)");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless chromium, with nothing that would reach for the network.
async fn open_browser(driver: &ChromeDriver, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// Where the pages' screenshots go (test artifacts).
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

async fn find(browser: &Client, css: &str) -> fantoccini::elements::Element {
    match browser
        .wait()
        .at_most(LIMIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => {
            let url = browser.current_url().await.map(|u| u.to_string());
            let page = browser.source().await.unwrap_or_default();
            panic!("no {css} on {url:?}: {e}\n{page}")
        }
    }
}

/// The text of `css`; found again if a reload replaced the element meanwhile.
async fn text(browser: &Client, css: &str) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        match find(browser, css).await.text().await {
            Ok(text) => return text,
            Err(e) => assert!(Instant::now() < deadline, "{css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(browser: &Client, css: &str, value: &str) {
    let field = find(browser, css).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn click(browser: &Client, css: &str) {
    find(browser, css).await.click().await.unwrap();
}

async fn path(browser: &Client) -> String {
    browser.current_url().await.unwrap().path().to_owned()
}

/// Waits for the browser to arrive at `expected` (a click's navigation may still run).
async fn wait_for_path(browser: &Client, expected: &str) {
    poll_until(
        &format!("the browser goes to {expected}"),
        || path(browser),
        |path| path == expected,
    )
    .await;
}

/// Polls `read` until `done` holds for what it returns; the last value.
async fn poll_until<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut read: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: still {value:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_dashboard_logs_in_adds_a_service_and_follows_its_deploys_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let repos = Repos::new(dir.path());
    for i in 0..FILES {
        repos.write(
            &format!("page-{i:02}.html"),
            &pattern(20_000 + i * 11, i as u64),
        );
    }
    let first = repos.commit_and_push("twelve pages", "main");
    let ftp = TestServer::start();
    let target = ftp.home().join("site");
    std::fs::create_dir_all(&target).unwrap();
    let gate = StorGate::start(format!("127.0.0.1:{}", ftp.port()).parse().unwrap());
    add_user(&db, "admin", true);
    let server = DeployServer::start(&db, &[]);
    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = open_browser(&driver, &dir.path().join("chromium-profile")).await;
        let walk = walk_through(&browser, &server, &repos, &gate, &target, &first).await;
        let _ = browser.close().await;
        walk
    });
}

async fn walk_through(
    browser: &Client,
    server: &DeployServer,
    repos: &Repos,
    gate: &StorGate,
    target: &Path,
    first: &str,
) {
    // Unauthenticated: every page leads to the login form.
    browser.goto(&server.url("/services/new")).await.unwrap();
    wait_for_path(browser, "/login").await;
    screenshot(browser, "login").await;
    fill(browser, "#user", "admin").await;
    fill(browser, "#password", "not the password").await;
    click(browser, "#login").await;
    assert!(
        text(browser, "#login-error")
            .await
            .contains("Wrong user name or password"),
        "a wrong password is refused"
    );
    assert_eq!(
        find(browser, "#user")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("admin"),
        "the user name stays filled in after a refusal"
    );
    fill(browser, "#user", "admin").await;
    fill(browser, "#password", PASSWORD).await;
    click(browser, "#login").await;
    // Back where the login interrupted: the add form. The empty dashboard says what to do.
    wait_for_path(browser, "/services/new").await;
    browser.goto(&server.url("/")).await.unwrap();
    assert!(
        text(browser, "#empty-state")
            .await
            .contains("ferry deploy service add")
    );
    screenshot(browser, "dashboard-empty").await;

    // Add a service through the form, with a branch the repository does not have: it is saved,
    // validated, and the problem is shown beside the branch field.
    click(browser, "#add-service").await;
    wait_for_path(browser, "/services/new").await;
    fill(browser, "#name", "site").await;
    fill(browser, "#repo", repos.bare.to_str().unwrap()).await;
    fill(browser, "#branch", "production").await;
    let to = format!("ftp://{USER}@127.0.0.1:{}/site", gate.addr.port());
    fill(browser, "#target", &to).await;
    fill(browser, "#ftp_password", PASSWORD).await;
    fill(browser, "#webhook_secret", SECRET).await;
    find(browser, "#provider")
        .await
        .select_by_value("github")
        .await
        .unwrap();
    click(browser, "#save").await;
    let problem = text(browser, "#error-branch").await;
    assert!(problem.contains("no branch matching"), "{problem}");
    let hook_url = find(browser, "#hook-url")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    let key = hook_url
        .rsplit_once("/hooks/")
        .unwrap_or_else(|| panic!("no hook URL: {hook_url}"))
        .1
        .to_owned();
    assert_eq!(
        find(browser, "#hook-secret")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(SECRET),
        "the secret is shown once, to copy"
    );
    screenshot(browser, "service-form-problems").await;
    // Fixed: every check passes and the service's page opens.
    fill(browser, "#branch", "main").await;
    fill(browser, "#api_url", "https://git.example.com/api/v3").await;
    click(browser, "#save").await;
    wait_for_path(browser, "/services/site").await;
    let stored = get_json(server, "/api/services/site");
    assert_eq!(
        stored["api_url"], "https://git.example.com/api/v3",
        "{stored}"
    );
    assert_eq!(stored["branch"], "main", "{stored}");
    assert_eq!(text(browser, "#validation").await, "All checks passed");
    let checks = text(browser, "#checks").await;
    assert!(checks.contains("write access"), "{checks}");
    // "Add the webhook" asks the git host's API through ferry's; this service cannot (it has no
    // public address), and the page says so.
    click(browser, "#stat-webhook button").await;
    let answer = poll_until(
        "the add-webhook answer",
        || async { text(browser, "#stat-webhook [data-add-webhook-result]").await },
        |answer| answer.starts_with("not added"),
    )
    .await;
    assert!(answer.contains("--public-url"), "{answer}");

    // A push: the page shows the deploy part-way (the gate holds the FTP uploads), then done.
    gate.arm(HELD_AFTER);
    let body = push_body("main", &"0".repeat(40), first, "twelve pages");
    let (status, answer) = post_hook(server, &key, "push", "delivery-1", &body, SECRET);
    assert_eq!(status, 202, "{answer}");
    let id = queued_id(&answer);
    browser.goto(&server.url("/services/site")).await.unwrap();
    let files = poll_until(
        "the progress bar shows the held deploy",
        || async { text(browser, "#progress-files").await },
        |files| files.starts_with(&format!("{HELD_AFTER} / {FILES} files")),
    )
    .await;
    let percent: u32 = find(browser, "#progress")
        .await
        .attr("aria-valuenow")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(percent as usize, 100 * HELD_AFTER / FILES, "{files}");
    assert!(
        text(browser, "#progress-current")
            .await
            .starts_with("page-")
    );
    // The phase of the deploy: a first deploy's pages all go out as entry points.
    assert_eq!(
        text(browser, "#progress-phase").await,
        "changed entry points"
    );
    screenshot(browser, "service-progress").await;
    // Meanwhile the dashboard shows the service as deploying, with the animated icon.
    browser.goto(&server.url("/")).await.unwrap();
    let card = find(browser, "#service-site").await;
    assert!(
        card.attr("class")
            .await
            .unwrap()
            .unwrap()
            .contains("state-busy")
    );
    find(browser, "#service-site .status-busy").await;
    assert!(
        text(browser, "#service-site .state-text")
            .await
            .starts_with("deploying")
    );
    screenshot(browser, "dashboard-deploying").await;
    browser.goto(&server.url("/services/site")).await.unwrap();
    find(browser, "#live[data-deploy]").await;
    gate.release();
    poll_until(
        "the progress bar reaches done",
        || async { text(browser, "#live-status").await },
        |status| status == "done",
    )
    .await;
    assert_eq!(
        find(browser, "#progress")
            .await
            .attr("aria-valuenow")
            .await
            .unwrap()
            .as_deref(),
        Some("100")
    );
    assert_eq!(wait_for_deploy(server, id)["status"], "ok");
    assert_target_is(target, &repos.archive(first));

    // The dashboard lists it as ok, with its count; also at phone width.
    browser.goto(&server.url("/")).await.unwrap();
    let card = find(browser, "#service-site").await;
    assert!(
        card.attr("class")
            .await
            .unwrap()
            .unwrap()
            .contains("state-ok")
    );
    assert!(text(browser, "#service-site .count.ok").await.contains('1'));
    screenshot(browser, "dashboard").await;
    browser.set_window_size(390, 844).await.unwrap();
    browser.refresh().await.unwrap();
    find(browser, "#service-site").await;
    screenshot(browser, "dashboard-phone").await;
    // Nothing wider than the phone's screen: no sideways scrolling, on the list or on a service.
    for page in ["/", "/services/site"] {
        browser.goto(&server.url(page)).await.unwrap();
        let fits = browser
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            fits,
            serde_json::Value::Bool(true),
            "{page} is wider than a phone"
        );
    }
    browser.set_window_size(1280, 900).await.unwrap();

    // A deploy the target refuses (a directory where a file must go) fails, and the service's
    // page lists it with its error and its commits.
    let blocker = target.join("blocker.txt");
    std::fs::create_dir_all(blocker.join("inside")).unwrap();
    std::fs::write(blocker.join("inside/keep"), b"x").unwrap();
    repos.write("blocker.txt", b"a file at last\n");
    let second = repos.commit_and_push("add blocker.txt", "main");
    let body = push_body("main", first, &second, "add blocker.txt");
    let (status, answer) = post_hook(server, &key, "push", "delivery-2", &body, SECRET);
    assert_eq!(status, 202, "{answer}");
    let failed = queued_id(&answer);
    assert_eq!(wait_for_deploy(server, failed)["status"], "failed");
    browser.goto(&server.url("/services/site")).await.unwrap();
    let row = format!("#failed-{failed}");
    assert!(
        !text(browser, &format!("{row} .error-text"))
            .await
            .is_empty()
    );
    click(browser, &format!("{row} summary")).await;
    assert!(
        text(browser, &format!("{row} .popover-body"))
            .await
            .contains("add blocker.txt")
    );
    screenshot(browser, "service-failed").await;

    // A second failure; the first is skipped (with a reason), then the target is repaired and
    // restored from the preview: the combined commits and the net file changes, then the run.
    repos.write("page-00.html", b"<h1>new front page</h1>\n");
    let third = repos.commit_and_push("new front page", "main");
    let body = push_body("main", &second, &third, "new front page");
    let (status, answer) = post_hook(server, &key, "push", "delivery-3", &body, SECRET);
    assert_eq!(status, 202, "{answer}");
    let failed_again = queued_id(&answer);
    assert_eq!(wait_for_deploy(server, failed_again)["status"], "failed");
    browser.goto(&server.url("/services/site")).await.unwrap();
    click(browser, &format!("[data-skip='{failed}']")).await;
    browser
        .send_alert_text("superseded by the next push")
        .await
        .unwrap();
    browser.accept_alert().await.unwrap();
    let skipped = poll_until(
        "the skipped deploy is shown as skipped",
        || async { text(browser, &format!("#recent-{failed}")).await },
        |row| row.contains("skipped by admin"),
    )
    .await;
    assert!(skipped.contains("superseded by the next push"), "{skipped}");
    assert!(
        browser
            .find(Locator::Css(&format!("#failed-{failed}")))
            .await
            .is_err(),
        "a skipped deploy is no longer restored"
    );
    std::fs::remove_dir_all(&blocker).unwrap();
    click(browser, "#restore").await;
    let files = poll_until(
        "the restore preview lists the net changes",
        || async { text(browser, "#restore-files").await },
        |files| files.contains("blocker.txt"),
    )
    .await;
    assert!(files.contains("A blocker.txt"), "{files}");
    assert!(files.contains("M page-00.html"), "{files}");
    let commits = text(browser, "#restore-commits").await;
    assert!(commits.contains("new front page"), "{commits}");
    screenshot(browser, "restore-preview").await;
    let run = find(browser, "#restore-run").await;
    poll_until(
        "the restore can run",
        || async { run.is_enabled().await.unwrap() },
        |enabled| *enabled,
    )
    .await;
    run.click().await.unwrap();
    poll_until(
        "the restore's progress reaches done",
        || async {
            match browser.find(Locator::Css("#live-status")).await {
                Ok(status) => status.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        },
        |status| status == "done",
    )
    .await;
    assert_target_is(target, &repos.archive(&third));
    let services = get_json(server, "/api/services");
    assert_eq!(services["services"][0]["status"], "ok", "{services}");
    let restored = get_json(server, &format!("/api/deploys/{failed_again}"));
    assert!(restored["restored_by"].as_i64().is_some(), "{restored}");

    // A rollback to the first commit, from its row in the recent deploys, with the same preview.
    browser.goto(&server.url("/services/site")).await.unwrap();
    click(browser, &format!("[data-rollback='{first}']")).await;
    let files = poll_until(
        "the rollback preview lists the net changes",
        || async { text(browser, "#restore-files").await },
        |files| files.contains("blocker.txt"),
    )
    .await;
    assert!(files.contains("D blocker.txt"), "{files}");
    let run = find(browser, "#restore-run").await;
    poll_until(
        "the rollback can run",
        || async { run.is_enabled().await.unwrap() },
        |enabled| *enabled,
    )
    .await;
    run.click().await.unwrap();
    poll_until(
        "the rollback's progress reaches done",
        || async {
            match browser.find(Locator::Css("#live-status")).await {
                Ok(status) => status.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        },
        |status| status == "done",
    )
    .await;
    assert_target_is(target, &repos.archive(first));

    // The log: every deploy, newest first, a page at a time; failures only on demand; commits
    // on a click.
    browser.goto(&server.url("/log?per_page=2")).await.unwrap();
    let first_page = text(browser, "#log tbody").await;
    click(browser, "#older").await;
    let second_page = poll_until(
        "the second page of the log",
        || async { text(browser, ".pager").await },
        |pager| pager.contains("page 2 of"),
    )
    .await;
    assert_ne!(
        text(browser, "#log tbody").await,
        first_page,
        "{second_page}"
    );
    find(browser, "#newer").await;
    browser.goto(&server.url("/log")).await.unwrap();
    find(browser, &format!("#deploy-{id}")).await;
    find(browser, &format!("#deploy-{failed}")).await;
    assert!(
        text(browser, &format!("#deploy-{failed}"))
            .await
            .contains("skipped by admin")
    );
    click(browser, "#log-failed").await;
    find(browser, "#log-filter button")
        .await
        .click()
        .await
        .unwrap();
    poll_until(
        "the log shows failures only",
        || async {
            browser
                .find_all(Locator::Css("#log tbody tr"))
                .await
                .unwrap()
                .len()
        },
        |rows| *rows == 1,
    )
    .await;
    click(browser, &format!("#deploy-{failed_again} summary")).await;
    screenshot(browser, "log").await;

    // Notification sets: add one, choose it for the service.
    browser
        .goto(&server.url("/notifications/new"))
        .await
        .unwrap();
    fill(browser, "#set-name", "ops").await;
    fill(browser, "#success_emails", "ops@example.com").await;
    fill(browser, "#failure_emails", "not an address").await;
    click(browser, "#save-set").await;
    assert!(
        text(browser, "#error-failure_emails")
            .await
            .contains("not an address")
    );
    fill(browser, "#failure_emails", "oncall@example.com").await;
    click(browser, "#save-set").await;
    wait_for_path(browser, "/notifications").await;
    assert!(
        text(browser, "#set-ops")
            .await
            .contains("oncall@example.com")
    );
    screenshot(browser, "notifications").await;
    click(browser, "#set-ops a").await;
    wait_for_path(browser, "/notifications/ops/edit").await;
    fill(
        browser,
        "#success_emails",
        "ops@example.com\ndev@example.com",
    )
    .await;
    find(browser, "#notify_pusher")
        .await
        .select_by_value("failure")
        .await
        .unwrap();
    click(browser, "#save-set").await;
    wait_for_path(browser, "/notifications").await;
    let row = text(browser, "#set-ops").await;
    assert!(row.contains("dev@example.com"), "{row}");
    assert!(row.contains("the pusher (failure)"), "{row}");
    browser.goto(&server.url("/services/site")).await.unwrap();
    find(browser, "#notifications select")
        .await
        .select_by_value("ops")
        .await
        .unwrap();
    click(browser, "#notifications button").await;
    poll_until(
        "the service uses the chosen set",
        || async { get_json(server, "/api/services")["services"][0]["notification_set"].clone() },
        |set| set == "ops",
    )
    .await;

    // How deploys reach the site, on the edit form: a swap that would show a maintenance page
    // is refused beside that field; a swap alone is saved, and validation tries its rename.
    browser
        .goto(&server.url("/services/site/edit"))
        .await
        .unwrap();
    find(browser, "#deploy_mode")
        .await
        .select_by_value("swap")
        .await
        .unwrap();
    fill(browser, "#maintenance", "page-00.html").await;
    click(browser, "#save").await;
    let problem = text(browser, "#error-maintenance").await;
    assert!(problem.contains("ordered fallback"), "{problem}");
    screenshot(browser, "service-form-deploy-mode").await;
    find(browser, "#deploy_mode")
        .await
        .select_by_value("swap")
        .await
        .unwrap();
    fill(browser, "#maintenance", "").await;
    fill(browser, "#entry_points", "*.html\n*.tpl").await;
    click(browser, "#save").await;
    wait_for_path(browser, "/services/site").await;
    assert!(text(browser, "#stat-mode").await.starts_with("swap"));
    assert!(text(browser, "#checks").await.contains("swap: renamed"));
    let stored = get_json(server, "/api/services/site");
    assert_eq!(stored["deploy_mode"], "swap", "{stored}");
    assert_eq!(
        stored["entry_points"],
        json!(["*.html", "*.tpl"]),
        "{stored}"
    );

    // Requests without the session's CSRF token change nothing, with its cookie or not.
    let cookie = browser
        .get_named_cookie("ferry_session")
        .await
        .unwrap()
        .value()
        .to_owned();
    let cookie = format!("Cookie: ferry_session={cookie}");
    let (status, _) = curl(&[
        "-H",
        &cookie,
        "--data",
        "csrf=forged",
        &server.url("/services/site/validate"),
    ]);
    assert_eq!(status, 403, "a form without the session's token");
    let (status, body) = curl(&["-H", &cookie, "-X", "POST", &server.url("/api/services")]);
    assert_eq!(status, 403, "an API change without X-CSRF-Token: {body}");
    let (status, _) = curl(&[&server.url("/api/services")]);
    assert_eq!(status, 401);
    let (status, _) = api_curl(server, "/api/services", &[]);
    assert_eq!(status, 200);

    // Deleting a set (after a confirmation) leaves its services without one.
    browser.goto(&server.url("/notifications")).await.unwrap();
    click(browser, "#set-ops button.danger").await;
    browser.accept_alert().await.unwrap();
    poll_until(
        "the deleted set is gone",
        || async { get_json(server, "/api/services")["services"][0]["notification_set"].clone() },
        |set| set.is_null(),
    )
    .await;

    // The service page always shows the webhook URL; a new one, asked for on the edit form, is
    // shown once on the service page, and the old one stops working.
    browser.goto(&server.url("/services/site")).await.unwrap();
    let value = |css: &'static str| async move {
        find(browser, css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    };
    let old_url = value("#service-hook-url").await;
    assert!(old_url.contains("/hooks/"), "{old_url}");
    browser
        .goto(&server.url("/services/site/edit"))
        .await
        .unwrap();
    fill(browser, "#ftp_password", PASSWORD).await;
    click(browser, "input[name=new_key]").await;
    click(browser, "#save").await;
    // The answer to the form's POST is the service's page.
    assert!(text(browser, "#created h2").await.contains("New webhook"));
    let new_url = value("#hook-url").await;
    assert!(
        new_url.contains("/hooks/") && new_url != old_url,
        "{new_url}"
    );
    assert_eq!(value("#service-hook-url").await, new_url);
    let (status, _) = curl(&["-X", "POST", "--data", "{}", &old_url]);
    assert_eq!(status, 404, "the old hook URL still answers");

    // A service whose every check passes at once lands on its page, hook URL and secret shown.
    browser.goto(&server.url("/services/new")).await.unwrap();
    fill(browser, "#name", "blog").await;
    fill(browser, "#repo", repos.bare.to_str().unwrap()).await;
    fill(browser, "#branch", "main").await;
    let blog = format!("ftp://{USER}@127.0.0.1:{}/blog", gate.addr.port());
    fill(browser, "#target", &blog).await;
    fill(browser, "#ftp_password", PASSWORD).await;
    fill(browser, "#webhook_secret", "blog-secret-0123456789").await;
    click(browser, "#save").await;
    assert!(
        text(browser, "#created h2")
            .await
            .contains("Service blog added")
    );
    // The service's page (its Edit button), not the form.
    find(browser, "#edit-service").await;
    assert!(value("#hook-url").await.contains("/hooks/"));
    assert_eq!(value("#hook-secret").await, "blog-secret-0123456789");
    assert_eq!(value("#service-hook-url").await, value("#hook-url").await);

    // Logging out ends the session.
    click(browser, ".logout button").await;
    wait_for_path(browser, "/login").await;
    browser.goto(&server.url("/log")).await.unwrap();
    wait_for_path(browser, "/login").await;
    let (status, _) = curl(&["-H", &cookie, &server.url("/api/services")]);
    assert_eq!(status, 401);
}

/// Logs `user` in with [`PASSWORD`] over FTP at `server`; the reply code to PASS.
fn ftp_login_code(server: &FerryServe, user: &str, password: &str) -> u16 {
    let mut ftp = server.connect();
    ftp.expect(&format!("USER {user}"), 331);
    ftp.command(&format!("PASS {password}")).code
}

#[test]
fn the_accounts_section_adds_edits_resets_and_disables_accounts_with_the_clis_checks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    add_user(&db, "admin", true);
    let homes = dir.path().join("homes");
    std::fs::create_dir_all(homes.join("carol")).unwrap();
    let ftp = FerryServe::start(
        crate::deploy_serve::ferry(&db, &["serve", "127.0.0.1:0", "--root"])
            .arg(&homes)
            .current_dir(dir.path()),
    );
    let server = DeployServer::start(&db, &[]);
    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = open_browser(&driver, &dir.path().join("chromium-profile")).await;
        browser.goto(&server.url("/accounts")).await.unwrap();
        wait_for_path(&browser, "/login").await;
        fill(&browser, "#user", "admin").await;
        fill(&browser, "#password", PASSWORD).await;
        click(&browser, "#login").await;
        wait_for_path(&browser, "/accounts").await;
        let note = text(&browser, "#admin-on-ftp").await;
        assert!(
            note.contains("its home and its permissions, nothing more")
                && note.contains("May log in over FTP"),
            "{note}"
        );
        assert!(text(&browser, "#account-admin").await.contains("yes"));
        screenshot(&browser, "accounts").await;

        // Add: the same checks, and words, as `ferry user add`.
        click(&browser, "#add-account").await;
        wait_for_path(&browser, "/accounts/new").await;
        fill(&browser, "#account-name", "carol").await;
        fill(&browser, "#account-password", "first pass").await;
        fill(&browser, "#account-password-again", "other pass").await;
        fill(&browser, "#account-perms", "elrz").await;
        click(&browser, "#save-account").await;
        let perms = text(&browser, "#error-perms").await;
        let cli = run_with_input(
            &mut crate::deploy_serve::ferry(
                &dir.path().join("scratch.db"),
                &["user", "add", "x", "--perms", "elrz", "--password-stdin"],
            ),
            "pw\n",
            LIMIT,
        );
        assert_eq!(cli.status.code(), Some(2));
        let cli = String::from_utf8_lossy(&cli.stderr);
        assert!(
            cli.contains(&format!("--perms: {perms}")),
            "{perms} / {cli}"
        );
        assert!(text(&browser, "#error-password").await.contains("differ"));
        screenshot(&browser, "account-form-errors").await;
        fill(&browser, "#account-password", "first pass").await;
        fill(&browser, "#account-password-again", "first pass").await;
        fill(&browser, "#account-perms", "elr").await;
        click(&browser, "#save-account").await;
        wait_for_path(&browser, "/accounts").await;
        let row = text(&browser, "#account-carol").await;
        assert!(row.contains("elr") && row.contains("enabled"), "{row}");
        assert_eq!(ftp_login_code(&ftp, "carol", "first pass"), 230);

        // Reset the password: the old one stops working, the new one works.
        browser
            .goto(&server.url("/accounts/carol/edit"))
            .await
            .unwrap();
        fill(&browser, "#new-password", PASSWORD).await;
        fill(&browser, "#new-password-again", PASSWORD).await;
        click(&browser, "#reset-password").await;
        wait_for_path(&browser, "/accounts").await;
        assert_eq!(ftp_login_code(&ftp, "carol", PASSWORD), 230);
        assert_eq!(ftp_login_code(&ftp, "carol", "first pass"), 530);

        // Edit: a dashboard-only account, with its own home.
        browser
            .goto(&server.url("/accounts/carol/edit"))
            .await
            .unwrap();
        // A home out of the FTP root is the command line's to give, not the dashboard's.
        fill(&browser, "#account-home", "/etc").await;
        click(&browser, "#save-account").await;
        let home = text(&browser, "#error-home").await;
        assert!(home.contains("stays under the server's root"), "{home}");
        fill(&browser, "#account-home", "carol-site").await;
        click(&browser, "#account-ftp").await;
        click(&browser, "#save-account").await;
        wait_for_path(&browser, "/accounts").await;
        assert_eq!(ftp_login_code(&ftp, "carol", PASSWORD), 530);
        let shown = run_with_timeout(
            &mut crate::deploy_serve::ferry(&db, &["user", "show", "carol"]),
            LIMIT,
        );
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.contains("ftp:              no (dashboard only)")
                && shown.contains("home:             carol-site"),
            "{shown}"
        );

        // Disable from the list (a confirm dialog first), then enable again.
        click(&browser, "#disable-carol").await;
        let _dialog = poll_until(
            "the confirm dialog",
            || browser.get_alert_text(),
            Result::is_ok,
        )
        .await;
        browser.accept_alert().await.unwrap();
        poll_until(
            "carol's row says disabled",
            || text(&browser, "#account-carol"),
            |row| row.contains("disabled"),
        )
        .await;
        screenshot(&browser, "accounts-disabled").await;
        let shown = run_with_timeout(
            &mut crate::deploy_serve::ferry(&db, &["user", "show", "carol"]),
            LIMIT,
        );
        assert!(String::from_utf8_lossy(&shown.stdout).contains("enabled:          no"));
        click(&browser, "#enable-carol").await;
        poll_until(
            "carol's row says enabled",
            || text(&browser, "#account-carol"),
            |row| row.contains("enabled"),
        )
        .await;
        let _ = browser.close().await;
    });
}
