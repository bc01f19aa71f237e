//! Requests as each provider documents them, from `src/deploy/service/testdata/*.http`: the request
//! line, the headers, a blank line, then the body (the file's final newline is not part of it).
//! Their signatures were computed with GitHub's documented example secret.

use super::*;

const SECRET: &[u8] = b"It's a Secret to Everybody";

struct Sample {
    headers: Headers,
    body: Vec<u8>,
}

fn sample(name: &str) -> Sample {
    let path = format!(
        "{}/src/deploy/service/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let split = text
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a blank line after the headers");
    let head = std::str::from_utf8(&text[..split]).unwrap();
    let mut body = text[split + 2..].to_vec();
    assert_eq!(body.pop(), Some(b'\n'), "{name} ends with a newline");
    let headers = Headers::new(head.lines().skip(1).map(|line| {
        let (name, value) = line.split_once(':').expect("Name: value");
        (name.to_owned(), value.to_owned())
    }));
    Sample { headers, body }
}

fn receive_sample(provider: Provider, name: &str) -> Result<WebhookEvent, WebhookError> {
    let s = sample(name);
    receive(
        provider,
        &s.headers,
        &s.body,
        Some(SECRET),
        DEFAULT_MAX_BODY_BYTES,
    )
}

fn single_push(event: WebhookEvent) -> PushEvent {
    match event {
        WebhookEvent::Push(mut pushes) if pushes.len() == 1 => pushes.remove(0),
        other => panic!("expected one push, got {other:?}"),
    }
}

#[test]
fn github_documented_test_vector_signs_hello_world() {
    // docs.github.com, "Validating webhook deliveries": secret, payload and expected signature.
    assert_eq!(
        sign(SECRET, b"Hello, World!"),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let headers = Headers::new([(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    assert_eq!(
        verify(Provider::Github, &headers, b"Hello, World!", Some(SECRET)),
        Ok(())
    );
}

#[test]
fn github_push_is_parsed_with_branch_pusher_and_commits_oldest_first() {
    let push = single_push(receive_sample(Provider::Github, "github-push.http").unwrap());
    assert_eq!(push.provider, Provider::Github);
    assert_eq!(push.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(push.git_ref, "refs/heads/main");
    assert_eq!(push.branch.as_deref(), Some("main"));
    assert_eq!(push.before, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert_eq!(push.after, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    assert!(!push.is_tag && !push.is_branch_deletion);
    assert_eq!(push.pusher, "Codertocat");
    assert_eq!(
        push.pusher_email.as_deref(),
        Some("21031067+Codertocat@users.noreply.github.com")
    );
    assert_eq!(push.commits.len(), 2);
    assert_eq!(push.commits[0].message, "Update README.md");
    let last = &push.commits[1];
    assert_eq!(last.id, push.after);
    assert_eq!(last.author, "Mona Lisa Octocat");
    assert_eq!(last.author_email.as_deref(), Some("mona@github.com"));
    assert_eq!(last.timestamp, "2019-05-15T15:20:41-05:00");
    assert_eq!(last.message, "Add site/index.html\n\nThe landing page.");
}

#[test]
fn github_form_encoded_payload_gives_the_same_push_as_json() {
    let json = single_push(receive_sample(Provider::Github, "github-push.http").unwrap());
    let form = single_push(receive_sample(Provider::Github, "github-push-form.http").unwrap());
    assert_eq!(form.delivery_id, "7f0a9c12-cc78-11e3-8c3e-6b9d1e2f3a4b");
    assert_eq!(
        PushEvent {
            delivery_id: json.delivery_id.clone(),
            ..form
        },
        json
    );
}

#[test]
fn form_body_without_payload_field_is_malformed() {
    let body = b"other=1";
    let headers = Headers::new([
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-GitHub-Event", "push"),
        (
            "X-Hub-Signature-256",
            &format!("sha256={}", sign(SECRET, body)),
        ),
    ]);
    let err = receive(Provider::Github, &headers, body, Some(SECRET), 1024).unwrap_err();
    assert!(matches!(err, WebhookError::Malformed(_)), "{err:?}");
    assert_eq!(err.status(), 400);
}

#[test]
fn github_ping_is_answered_as_ping() {
    assert_eq!(
        receive_sample(Provider::Github, "github-ping.http").unwrap(),
        WebhookEvent::Ping {
            provider: Provider::Github,
            delivery_id: "5a4e1f50-cc77-11e3-9a4c-0a1b2c3d4e5f".into()
        }
    );
}

#[test]
fn github_tag_deletion_is_a_tag_without_branch() {
    let push =
        single_push(receive_sample(Provider::Github, "github-push-tag-deleted.http").unwrap());
    assert!(push.is_tag);
    assert_eq!(push.branch, None);
    assert_eq!(push.git_ref, "refs/tags/simple-tag");
    assert!(
        !push.is_branch_deletion,
        "a deleted tag is not a deleted branch"
    );
    assert_eq!(push.after, ZERO_SHA);
    assert!(push.commits.is_empty());
}

#[test]
fn github_branch_deletion_is_flagged() {
    let push =
        single_push(receive_sample(Provider::Github, "github-push-branch-deleted.http").unwrap());
    assert_eq!(push.branch.as_deref(), Some("release/1.0"));
    assert!(push.is_branch_deletion);
    assert!(!push.is_tag);
    assert_eq!(push.after, ZERO_SHA);
}

#[test]
fn tampered_body_is_refused_with_401() {
    for (provider, name, header) in [
        (Provider::Github, "github-push.http", "X-Hub-Signature-256"),
        (Provider::Gitea, "gitea-push.http", "X-Gitea-Signature"),
        // Forgejo sends Gitea's header too, which is checked first.
        (
            Provider::Gitea,
            "forgejo-test-delivery.http",
            "X-Gitea-Signature",
        ),
        (
            Provider::Bitbucket,
            "bitbucket-push.http",
            "X-Hub-Signature",
        ),
    ] {
        let mut s = sample(name);
        let at = s.body.len() / 2;
        s.body[at] ^= 0x01;
        let err = receive(provider, &s.headers, &s.body, Some(SECRET), usize::MAX).unwrap_err();
        assert_eq!(err, WebhookError::BadSignature { header }, "{name}");
        assert_eq!(err.status(), 401);
    }
}

#[test]
fn wrong_secret_is_refused_for_every_provider() {
    for (provider, name) in [
        (Provider::Github, "github-push.http"),
        (Provider::Gitea, "gitea-push.http"),
        (Provider::Gitlab, "gitlab-push.http"),
        (Provider::Bitbucket, "bitbucket-push.http"),
    ] {
        let s = sample(name);
        let err = receive(
            provider,
            &s.headers,
            &s.body,
            Some(b"It's a Secret to Everybody!"),
            usize::MAX,
        )
        .unwrap_err();
        assert!(
            matches!(err, WebhookError::BadSignature { .. }),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn missing_signature_is_refused_when_a_secret_is_set() {
    let body = sample("github-push.http").body;
    let headers = Headers::new([("X-GitHub-Event", "push")]);
    assert_eq!(
        receive(Provider::Github, &headers, &body, Some(SECRET), usize::MAX),
        Err(WebhookError::MissingSignature {
            header: "X-Hub-Signature-256"
        })
    );
    let headers = Headers::new([("X-Gitlab-Event", "Push Hook")]);
    assert_eq!(
        verify(Provider::Gitlab, &headers, &body, Some(SECRET)),
        Err(WebhookError::MissingSignature {
            header: "X-Gitlab-Token"
        })
    );
}

#[test]
fn malformed_signature_headers_are_bad_signatures_not_panics() {
    let body = b"{}";
    for value in [
        "",
        "sha256=",
        "sha256=zz",
        "sha1=abcd",
        "sha256=abcd",
        "757107ea",
    ] {
        let headers = Headers::new([("X-Hub-Signature-256", value)]);
        assert_eq!(
            verify(Provider::Github, &headers, body, Some(SECRET)),
            Err(WebhookError::BadSignature {
                header: "X-Hub-Signature-256"
            }),
            "{value:?}"
        );
    }
}

#[test]
fn signature_is_checked_before_the_body_is_parsed() {
    // Not JSON and unsigned: the answer is 401, not 400, so nothing unauthenticated is parsed.
    let headers = Headers::new([("X-GitHub-Event", "push")]);
    let err = receive(Provider::Github, &headers, b"{not json", Some(SECRET), 1024).unwrap_err();
    assert_eq!(err.status(), 401);
}

#[test]
fn oversized_body_is_refused_with_413_before_anything_else() {
    let s = sample("github-push.http");
    let err = receive(
        Provider::Github,
        &s.headers,
        &s.body,
        Some(SECRET),
        s.body.len() - 1,
    )
    .unwrap_err();
    assert_eq!(
        err,
        WebhookError::TooLarge {
            size: s.body.len(),
            limit: s.body.len() - 1
        }
    );
    assert_eq!(err.status(), 413);
    // Exactly at the limit is fine.
    receive(
        Provider::Github,
        &s.headers,
        &s.body,
        Some(SECRET),
        s.body.len(),
    )
    .unwrap();
}

#[test]
fn malformed_json_signed_correctly_is_400() {
    for body in [
        &b"{\"ref\": "[..],
        b"[]",
        b"{\"ref\": 5, \"before\": \"a\", \"after\": \"b\"}",
    ] {
        let headers = Headers::new([
            ("X-GitHub-Event", "push"),
            (
                "X-Hub-Signature-256",
                &format!("sha256={}", sign(SECRET, body)),
            ),
        ]);
        let err = receive(Provider::Github, &headers, body, Some(SECRET), 1024).unwrap_err();
        assert!(matches!(err, WebhookError::Malformed(_)), "{err:?}");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn gitea_push_verifies_with_its_own_header_and_with_the_github_style_one() {
    let s = sample("gitea-push.http");
    let push = single_push(
        receive(
            Provider::Gitea,
            &s.headers,
            &s.body,
            Some(SECRET),
            usize::MAX,
        )
        .unwrap(),
    );
    assert_eq!(push.delivery_id, "f6266f16-1bf3-46a5-9ea4-602e06ead473");
    assert_eq!(push.branch.as_deref(), Some("develop"));
    assert_eq!(push.pusher, "gitea");
    assert_eq!(push.commits.len(), 1);
    assert_eq!(push.commits[0].author, "Gitea");
    assert_eq!(push.commits[0].message, "Webhooks Yay!");

    // An older Gitea (or a proxy) that only sends GitHub's header.
    let github_style = Headers::new([
        ("X-Gitea-Event", "push"),
        (
            "X-Hub-Signature-256",
            s.headers.get("X-Hub-Signature-256").unwrap(),
        ),
    ]);
    verify(Provider::Gitea, &github_style, &s.body, Some(SECRET)).unwrap();

    // Forgejo's own header alone.
    let forgejo = Headers::new([
        ("X-Forgejo-Event", "push"),
        (
            "X-Forgejo-Signature",
            s.headers.get("X-Gitea-Signature").unwrap(),
        ),
    ]);
    verify(Provider::Gitea, &forgejo, &s.body, Some(SECRET)).unwrap();
    let mut tampered = s.body.clone();
    tampered.push(b' ');
    assert_eq!(
        verify(Provider::Gitea, &forgejo, &tampered, Some(SECRET)),
        Err(WebhookError::BadSignature {
            header: "X-Forgejo-Signature"
        })
    );
}

#[test]
fn gitea_form_delivery_is_verified_over_its_payload_as_gitea_signs_it() {
    // Gitea's deliverer signs the JSON payload and sends it as `payload=<urlencoded JSON>`.
    let s = sample("gitea-push.http");
    let json = s.body.clone();
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish();
    let signature = sign(SECRET, &json);
    let headers = Headers::new([
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Gitea-Event", "push"),
        ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
        ("X-Gitea-Signature", signature.as_str()),
        ("X-Hub-Signature-256", &format!("sha256={signature}")),
    ]);
    let push = single_push(
        receive(
            Provider::Gitea,
            &headers,
            form.as_bytes(),
            Some(SECRET),
            usize::MAX,
        )
        .unwrap(),
    );
    assert_eq!(push.branch.as_deref(), Some("develop"));
    // A signature over the form body itself is not Gitea's and is refused.
    let wrong = sign(SECRET, form.as_bytes());
    let headers = Headers::new([
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Gitea-Signature", wrong.as_str()),
    ]);
    assert_eq!(
        verify(Provider::Gitea, &headers, form.as_bytes(), Some(SECRET)),
        Err(WebhookError::BadSignature {
            header: "X-Gitea-Signature"
        })
    );
    // A tampered payload inside the form is refused.
    let headers = Headers::new([
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Gitea-Signature", signature.as_str()),
    ]);
    verify(Provider::Gitea, &headers, form.as_bytes(), Some(SECRET)).unwrap();
    let tampered = form.replacen("develop", "main", 1);
    assert_ne!(tampered, form);
    assert!(verify(Provider::Gitea, &headers, tampered.as_bytes(), Some(SECRET)).is_err());
}

#[test]
fn forgejo_test_delivery_is_a_ping() {
    assert_eq!(
        receive_sample(Provider::Gitea, "forgejo-test-delivery.http").unwrap(),
        WebhookEvent::Ping {
            provider: Provider::Gitea,
            delivery_id: "0e4b0d3c-52f6-4b5e-a8d1-7c3f2b9a1e64".into()
        }
    );
}

#[test]
fn gitlab_push_checks_the_token_and_prefers_the_idempotency_key() {
    let push = single_push(receive_sample(Provider::Gitlab, "gitlab-push.http").unwrap());
    assert_eq!(push.delivery_id, "5a1b2c3d-9e8f-4a7b-8c6d-1e2f3a4b5c6d");
    assert_eq!(push.branch.as_deref(), Some("master"));
    assert_eq!(push.pusher, "jsmith");
    assert_eq!(push.pusher_email.as_deref(), Some("john@example.com"));
    assert_eq!(push.commits.len(), 2);
    assert_eq!(push.commits[0].author, "Jordi Mallach");
    assert_eq!(
        push.commits[0].author_email.as_deref(),
        Some("jordi@softcatala.org")
    );
    assert_eq!(push.commits[1].id, push.after);
}

#[test]
fn gitlab_token_of_another_length_is_refused() {
    let s = sample("gitlab-push.http");
    let headers = Headers::new([("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "It's")]);
    assert_eq!(
        verify(Provider::Gitlab, &headers, &s.body, Some(SECRET)),
        Err(WebhookError::BadSignature {
            header: "X-Gitlab-Token"
        })
    );
}

#[test]
fn gitlab_tag_push_and_branch_deletion() {
    let tag = single_push(receive_sample(Provider::Gitlab, "gitlab-tag-push.http").unwrap());
    assert!(tag.is_tag);
    assert_eq!(tag.branch, None);
    assert_eq!(tag.delivery_id, "2b3c4d5e-6f70-4a81-92a3-b4c5d6e7f809");

    let gone =
        single_push(receive_sample(Provider::Gitlab, "gitlab-push-branch-deleted.http").unwrap());
    assert!(gone.is_branch_deletion);
    assert_eq!(gone.branch.as_deref(), Some("feature/old"));
}

#[test]
fn gitlab_other_events_are_ignored_without_parsing() {
    let headers = Headers::new([
        ("X-Gitlab-Event", "Issue Hook"),
        ("X-Gitlab-Token", "It's a Secret to Everybody"),
    ]);
    assert_eq!(
        receive(Provider::Gitlab, &headers, b"...", Some(SECRET), 1024).unwrap(),
        WebhookEvent::Ignored {
            provider: Provider::Gitlab,
            delivery_id: delivery_id(Provider::Gitlab, &headers, b"..."),
            event: "Issue Hook".into()
        }
    );
}

#[test]
fn bitbucket_push_gives_one_event_per_change() {
    let WebhookEvent::Push(pushes) =
        receive_sample(Provider::Bitbucket, "bitbucket-push.http").unwrap()
    else {
        panic!("expected pushes");
    };
    assert_eq!(pushes.len(), 3);
    for push in &pushes {
        assert_eq!(push.delivery_id, "9f2b4d1e-3a5c-4e7f-8b9d-0c1e2f3a4b5c");
        assert_eq!(push.pusher, "ada");
    }

    let main = &pushes[0];
    assert_eq!(main.git_ref, "refs/heads/main");
    assert_eq!(main.branch.as_deref(), Some("main"));
    assert_eq!(main.before, "7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d");
    assert_eq!(main.after, "e1d3c5a7b9f0d2e4c6a8b0f2d4e6c8a0b2d4f6e8");
    assert!(!main.is_tag && !main.is_branch_deletion);
    // Bitbucket lists newest first; events carry oldest first.
    assert_eq!(
        main.commits[0].id,
        "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9"
    );
    assert_eq!(main.commits[0].author, "Charles Babbage");
    assert_eq!(
        main.commits[0].author_email.as_deref(),
        Some("charles@example.com")
    );
    assert_eq!(main.commits[1].id, main.after);
    assert_eq!(main.commits[1].timestamp, "2024-05-02T10:21:04+00:00");

    let tag = &pushes[1];
    assert!(tag.is_tag);
    assert_eq!(tag.git_ref, "refs/tags/v2.0");
    assert_eq!(tag.before, ZERO_SHA);

    let deleted = &pushes[2];
    assert!(deleted.is_branch_deletion);
    assert_eq!(deleted.branch.as_deref(), Some("release/1.0"));
    assert_eq!(deleted.after, ZERO_SHA);
}

#[test]
fn bitbucket_without_secret_is_authenticated_by_the_url_key_alone() {
    let s = sample("bitbucket-push.http");
    let unsigned = Headers::new([("X-Event-Key", "repo:push")]);
    let event = receive(Provider::Bitbucket, &unsigned, &s.body, None, usize::MAX).unwrap();
    assert!(matches!(event, WebhookEvent::Push(p) if p.len() == 3));
    // The delivery id falls back to a digest of the body, stable across retries.
    assert_eq!(
        delivery_id(Provider::Bitbucket, &unsigned, &s.body),
        format!("sha256:{}", hex::encode(Sha256::digest(&s.body)))
    );
}

#[test]
fn bitbucket_diagnostics_ping_is_a_ping() {
    assert_eq!(
        receive_sample(Provider::Bitbucket, "bitbucket-ping.http").unwrap(),
        WebhookEvent::Ping {
            provider: Provider::Bitbucket,
            delivery_id: "1e2f3a4b-5c6d-4e7f-8091-a2b3c4d5e6f7".into()
        }
    );
}

#[test]
fn headers_are_case_insensitive() {
    let headers = Headers::new([("x-github-event", "ping"), ("X-GITHUB-DELIVERY", "abc")]);
    assert_eq!(headers.get("X-GitHub-Event"), Some("ping"));
    assert_eq!(delivery_id(Provider::Github, &headers, b""), "abc");
}

#[test]
fn branch_patterns_match_names_and_globs() {
    let main: BranchPattern = "main".parse().unwrap();
    assert!(main.matches("main"));
    assert!(!main.matches("main2"));
    assert!(!main.matches("mai"));
    assert!(!main.is_glob());

    let release: BranchPattern = "release/*".parse().unwrap();
    assert!(release.is_glob());
    assert!(release.matches("release/1.0"));
    assert!(release.matches("release/"));
    assert!(!release.matches("release/1.0/hotfix"));
    assert!(!release.matches("releases/1.0"));
    assert!(!release.matches("main"));

    let deep: BranchPattern = "feature/**".parse().unwrap();
    assert!(deep.matches("feature/a/b/c"));
    let question: BranchPattern = "v?".parse().unwrap();
    assert!(question.matches("v1"));
    assert!(!question.matches("v10"));
    let mid: BranchPattern = "hotfix-*-prod".parse().unwrap();
    assert!(mid.matches("hotfix-42-prod"));
    assert!(!mid.matches("hotfix-42-staging"));

    let full: BranchPattern = "refs/heads/main".parse().unwrap();
    assert_eq!(full.as_str(), "main");
    for bad in ["", "a b", "a..b", "/main", "main/", "x:y", "a~1"] {
        assert!(bad.parse::<BranchPattern>().is_err(), "{bad:?}");
    }
}

/// Found by the webhook fuzz target: many `*` against a long name took exponential time (the
/// fuzzer hung in it). The check runs on its own thread so a regression fails instead of hanging.
#[test]
fn globs_with_many_stars_match_in_time() {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let many: BranchPattern = "a*a*a*a*a*a*a*a*a*a*a*a*b".parse().unwrap();
        let deep: BranchPattern = "**a**a**a**a**a**a**a**a**b".parse().unwrap();
        let long = "a".repeat(400);
        let _ = done.send((
            many.matches(&long),
            deep.matches(&long),
            many.matches(&format!("{long}b")),
            deep.matches(&format!("{}/b", "a/".repeat(200))),
        ));
    });
    let answers = result
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("glob matching took more than 10 s");
    assert_eq!(answers, (false, false, true, true));
}

#[test]
fn globs_agree_with_their_definition_on_edge_cases() {
    let cases = [
        ("*", "", true),
        ("*", "a/b", false),
        ("**", "a/b", true),
        ("a**", "a", true),
        ("***", "a/b", true),
        ("*/*", "a/b", true),
        ("*/*", "a/b/c", false),
        ("?", "/", false),
        ("a?c", "abc", true),
        ("**/main", "x/y/main", true),
        ("**/main", "main", false),
        ("release/**", "release/", true),
    ];
    for (pattern, name, expected) in cases {
        let glob = BranchPattern(pattern.to_owned());
        assert_eq!(glob.matches(name), expected, "{pattern} ~ {name}");
    }
}

#[test]
fn provider_names_round_trip() {
    for provider in Provider::ALL {
        assert_eq!(provider.as_str().parse::<Provider>(), Ok(provider));
    }
    assert_eq!("Forgejo".parse::<Provider>(), Ok(Provider::Gitea));
    assert!("svn".parse::<Provider>().is_err());
}

#[test]
fn provider_is_guessed_from_the_repository_host() {
    for (repo, provider) in [
        ("https://github.com/o/r.git", Provider::Github),
        ("git@github.com:o/r.git", Provider::Github),
        ("https://GitLab.com/o/r", Provider::Gitlab),
        ("git@bitbucket.org:team/site.git", Provider::Bitbucket),
        ("https://codeberg.org/o/r.git", Provider::Gitea),
        ("file:///srv/git/site.git", Provider::Git),
        ("/srv/git/site.git", Provider::Git),
        ("https://git.example.com/o/r.git", Provider::Git),
    ] {
        assert_eq!(Provider::guess_from_repo(repo), provider, "{repo}");
    }
}
