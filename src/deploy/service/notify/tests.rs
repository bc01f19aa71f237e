//! Recipients, rendering and the SMTP URL; sending is tested on the wire
//! (`protocol-tests/deploy_notify.rs`, against a real SMTP server).

use super::*;
use crate::deploy::service::model::{DeployKind, DeployStats, NotifyWhen};
use crate::deploy::service::webhook::PushCommit;

fn commit(id: &str, message: &str, author: &str, email: Option<&str>) -> PushCommit {
    PushCommit {
        id: id.into(),
        message: message.into(),
        author: author.into(),
        author_email: email.map(Into::into),
        timestamp: "2026-01-02T03:04:05Z".into(),
    }
}

fn deploy(status: DeployStatus) -> Deploy {
    Deploy {
        id: 42,
        service: "site".into(),
        status,
        branch: Some("main".into()),
        commit_from: None,
        commit_to: "0123456789abcdef0123456789abcdef01234567".into(),
        delivery_id: Some("d-1".into()),
        user: Some("Codertocat".into()),
        user_email: Some("Codertocat@Example.com".into()),
        queued_at: "2026-01-02T03:04:05Z".into(),
        started_at: None,
        finished_at: None,
        stats: DeployStats {
            files_added: 2,
            files_modified: 1,
            files_removed: 1,
            bytes: 1536,
        },
        error: (status == DeployStatus::Failed)
            .then(|| "cannot upload index.html: 550 Permission denied".into()),
        commits: vec![
            commit(
                &"a".repeat(40),
                "First\n\nbody",
                "Mona",
                Some("mona@example.com"),
            ),
            commit(&"b".repeat(40), "Second", "Ops", Some("OPS@example.com")),
            commit(&"c".repeat(40), "Third", "Anonymous", None),
        ],
        kind: DeployKind::Push,
        duration_secs: Some(7),
        skipped: None,
        restored_by: None,
    }
}

fn set() -> NotificationSet {
    NotificationSet {
        name: "team".into(),
        success_emails: vec!["ops@example.com".into(), "lead@example.com".into()],
        failure_emails: vec!["oncall@example.com".into()],
        notify_pusher: NotifyWhen::Never,
        notify_authors: NotifyWhen::Never,
    }
}

fn strings(addresses: Vec<Address>) -> Vec<String> {
    addresses.into_iter().map(|a| a.to_string()).collect()
}

#[test]
fn recipients_follow_the_outcome_and_the_sets_options() {
    let ok = deploy(DeployStatus::Ok);
    let failed = deploy(DeployStatus::Failed);
    assert_eq!(
        strings(recipients(&set(), &ok)),
        ["ops@example.com", "lead@example.com"]
    );
    assert_eq!(strings(recipients(&set(), &failed)), ["oncall@example.com"]);
    let everyone = NotificationSet {
        notify_pusher: NotifyWhen::Always,
        notify_authors: NotifyWhen::Always,
        ..set()
    };
    // The author OPS@example.com is ops@example.com already listed; the third author has no
    // address.
    assert_eq!(
        strings(recipients(&everyone, &ok)),
        [
            "ops@example.com",
            "lead@example.com",
            "Codertocat@Example.com",
            "mona@example.com"
        ]
    );
    assert_eq!(
        strings(recipients(&everyone, &failed)),
        [
            "oncall@example.com",
            "Codertocat@Example.com",
            "mona@example.com",
            "OPS@example.com"
        ]
    );
}

#[test]
fn the_pusher_and_the_authors_can_be_mailed_after_one_outcome_only() {
    let split = NotificationSet {
        success_emails: Vec::new(),
        failure_emails: Vec::new(),
        notify_pusher: NotifyWhen::Failure,
        notify_authors: NotifyWhen::Success,
        ..set()
    };
    assert_eq!(
        strings(recipients(&split, &deploy(DeployStatus::Ok))),
        ["mona@example.com", "OPS@example.com"]
    );
    assert_eq!(
        strings(recipients(&split, &deploy(DeployStatus::Failed))),
        ["Codertocat@Example.com"]
    );
}

#[test]
fn the_pusher_is_mailed_by_name_only_when_the_name_is_an_address() {
    let pusher_only = NotificationSet {
        success_emails: Vec::new(),
        notify_pusher: NotifyWhen::Always,
        ..set()
    };
    let mut by_name = deploy(DeployStatus::Ok);
    by_name.user_email = None;
    assert!(recipients(&pusher_only, &by_name).is_empty());
    by_name.user = Some("dev@example.com".into());
    assert_eq!(
        strings(recipients(&pusher_only, &by_name)),
        ["dev@example.com"]
    );
}

#[test]
fn no_reply_addresses_of_pushers_and_authors_are_skipped_but_listed_ones_kept() {
    let everyone = NotificationSet {
        success_emails: vec!["noreply@example.com".into()],
        notify_pusher: NotifyWhen::Always,
        notify_authors: NotifyWhen::Always,
        ..set()
    };
    let mut d = deploy(DeployStatus::Ok);
    d.user_email = Some("21031067+Codertocat@users.noreply.github.com".into());
    d.commits = vec![
        commit(&"a".repeat(40), "a", "GitHub", Some("noreply@github.com")),
        commit(
            &"b".repeat(40),
            "b",
            "Gitea",
            Some("mona@NoReply.gitea.example"),
        ),
        commit(&"c".repeat(40), "c", "Mona", Some("mona@example.com")),
    ];
    assert_eq!(
        strings(recipients(&everyone, &d)),
        ["noreply@example.com", "mona@example.com"]
    );
}

#[test]
fn builtin_templates_name_the_service_commits_files_and_error() {
    let templates = MailTemplates::builtin();
    let files = DeployFiles {
        added: vec!["index.html".into(), "css/site.css".into()],
        modified: vec!["about.html".into()],
        removed: vec!["old.html".into()],
    };
    let ok = MailContext::new(
        &deploy(DeployStatus::Ok),
        "ftp.example.com",
        "ftps://deploy@ftp.example.com:21/www",
        files.clone(),
        Duration::from_millis(2500),
    );
    let mail = templates.render(&ok).unwrap();
    assert_eq!(
        mail.subject,
        "[ferry] site: deployed 0123456789ab to ftp.example.com"
    );
    // HTML escapes `/` too.
    let html = mail.html.replace("&#x2f;", "/");
    for part in [&mail.text, &html] {
        for needle in [
            "site",
            "ftps://deploy@ftp.example.com:21/www",
            "aaaaaaaaaaaa",
            "First",
            "Mona",
            "css/site.css",
            "about.html",
            "old.html",
            "1.5 KiB",
            "2.5 s",
        ] {
            assert!(part.contains(needle), "{needle:?} missing from {part}");
        }
    }
    assert!(!mail.text.contains("body"), "only a commit's first line");
    assert!(mail.text.contains("  A index.html\n"), "{}", mail.text);

    let failed = MailContext::new(
        &deploy(DeployStatus::Failed),
        "ftp.example.com",
        "ftps://deploy@ftp.example.com:21/www",
        DeployFiles::default(),
        Duration::from_secs(75),
    );
    let mail = templates.render(&failed).unwrap();
    assert_eq!(
        mail.subject,
        "[ferry] site: deploy #42 of 0123456789ab to ftp.example.com failed"
    );
    for part in [&mail.text, &mail.html] {
        assert!(
            part.contains("cannot upload index.html: 550 Permission denied"),
            "{part}"
        );
        assert!(part.contains("1 min 15 s"), "{part}");
    }
}

#[test]
fn html_escapes_what_the_push_wrote_and_text_keeps_it() {
    let mut hostile = deploy(DeployStatus::Ok);
    hostile.commits = vec![commit(
        &"d".repeat(40),
        "<script>alert('x')</script> & more",
        "Eve <eve@example.com>",
        None,
    )];
    let context = MailContext::new(
        &hostile,
        "ftp.example.com",
        "ftp://u@ftp.example.com:21/",
        DeployFiles {
            added: vec!["<img src=x onerror=alert(1)>.html".into()],
            ..DeployFiles::default()
        },
        Duration::from_secs(1),
    );
    let mail = MailTemplates::builtin().render(&context).unwrap();
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(!mail.html.contains("<img"), "{}", mail.html);
    assert!(
        mail.html
            .contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; more"),
        "{}",
        mail.html
    );
    assert!(mail.html.contains("Eve &lt;eve@example.com&gt;"));
    assert!(
        mail.text.contains("<script>alert('x')</script> & more"),
        "{}",
        mail.text
    );
}

#[test]
fn a_template_directory_overrides_only_the_files_it_has() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("success.subject"),
        "Deployed {{ service }}\n  #{{ deploy_id }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("success.html"),
        "<p>{{ commits[0].message }} by {{ pusher }}: {{ files.added | join(', ') }}</p>",
    )
    .unwrap();
    let templates = MailTemplates::load(Some(dir.path())).unwrap();
    let mut d = deploy(DeployStatus::Ok);
    d.commits[0].message = "a < b".into();
    let context = MailContext::new(
        &d,
        "h",
        "ftp://u@h:21/",
        DeployFiles {
            added: vec!["x&y.html".into(), "z.html".into()],
            ..DeployFiles::default()
        },
        Duration::ZERO,
    );
    let mail = templates.render(&context).unwrap();
    assert_eq!(mail.subject, "Deployed site #42", "one line");
    assert_eq!(
        mail.html,
        "<p>a &lt; b by Codertocat: x&amp;y.html, z.html</p>"
    );
    // The text part is still the built-in one.
    assert_eq!(
        mail.text,
        MailTemplates::builtin().render(&context).unwrap().text
    );

    std::fs::write(dir.path().join("failure.txt"), "{% if error %}oops").unwrap();
    let error = MailTemplates::load(Some(dir.path())).unwrap_err();
    assert!(error.to_string().contains("failure.txt"), "{error}");
    let error = MailTemplates::load(Some(&dir.path().join("missing"))).unwrap_err();
    assert!(matches!(error, NotifyError::Read { .. }), "{error}");
}

#[test]
fn file_lists_are_bounded_and_the_rest_is_counted() {
    let many: Vec<String> = (0..MAX_LISTED_PATHS + 50)
        .map(|i| format!("f{i}.txt"))
        .collect();
    let files = DeployFiles {
        added: many,
        ..DeployFiles::default()
    }
    .bounded();
    assert_eq!(files.added.len(), MAX_LISTED_PATHS);
    let mut d = deploy(DeployStatus::Ok);
    d.stats.files_added = (MAX_LISTED_PATHS + 50) as u64;
    d.stats.files_modified = 0;
    d.stats.files_removed = 0;
    let context = MailContext::new(&d, "h", "ftp://u@h:21/", files, Duration::ZERO);
    assert_eq!(context.files.omitted, 50);
    let mail = MailTemplates::builtin().render(&context).unwrap();
    assert!(mail.text.contains("... and 50 more"), "{}", mail.text);
}

#[test]
fn smtp_urls_choose_the_security_and_refuse_passwords() {
    let url: SmtpUrl = "smtp://127.0.0.1:2525".parse().unwrap();
    assert_eq!(
        url,
        SmtpUrl {
            security: SmtpSecurity::None,
            host: "127.0.0.1".into(),
            port: 2525,
            user: None
        }
    );
    let url: SmtpUrl = "smtp+starttls://deploy%40example.com@mail.example.com"
        .parse()
        .unwrap();
    assert_eq!(url.security, SmtpSecurity::StartTls);
    assert_eq!(url.port, 587);
    assert_eq!(url.user.as_deref(), Some("deploy@example.com"));
    assert_eq!(
        url.to_string(),
        "smtp+starttls://deploy%40example%2Ecom@mail.example.com:587"
    );
    let url: SmtpUrl = "smtps://[::1]".parse().unwrap();
    assert_eq!((url.security, url.port), (SmtpSecurity::Tls, 465));
    assert_eq!(url.to_string(), "smtps://[::1]:465");
    for bad in [
        "smtp://user:hunter2@mail.example.com",
        "http://mail.example.com",
        "smtp:///nohost",
        "smtp://mail.example.com/path",
        "mail.example.com:25",
    ] {
        let error = bad.parse::<SmtpUrl>().unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains(&bad[..8]), "names the URL: {error}");
        assert!(error.contains("smtp+starttls://"), "{error}");
    }
}

#[test]
fn settings_debug_never_shows_the_password() {
    let settings = MailSettings {
        smtp: "smtps://u@mail.example.com".parse().unwrap(),
        password: Some(Secret::new("hunter2-sentinel")),
        from: "Ferry <ferry@example.com>".into(),
        templates: None,
        ca_file: None,
    };
    assert!(!format!("{settings:?}").contains("hunter2"));
    let notifier = Notifier::new(&settings).unwrap();
    assert!(!format!("{notifier:?}").contains("hunter2"));
    let bad_from = MailSettings {
        from: "not an address".into(),
        ..settings
    };
    assert!(matches!(
        Notifier::new(&bad_from),
        Err(NotifyError::From(_))
    ));
}
