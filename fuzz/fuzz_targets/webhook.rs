//! Webhook requests from anyone on the internet: for every provider, any headers and body are
//! answered with an event or a 400/401/413 error, never a panic; a body signed with the right
//! secret always verifies, and one byte changed never does.
#![no_main]

use ferry::deploy::service::webhook::{BranchPattern, Headers, Provider, receive, sign, verify};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"It's a Secret to Everybody";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let provider = Provider::ALL[usize::from(selector) % Provider::ALL.len()];
    // "Name: value" lines, a blank line, then the body.
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (&b""[..], rest),
    };
    let head = String::from_utf8_lossy(head);
    let pairs: Vec<(String, String)> = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let headers = Headers::new(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    for secret in [None, Some(SECRET)] {
        if let Err(error) = receive(provider, &headers, body, secret, 1 << 20) {
            assert!([400, 401, 413].contains(&error.status()), "{error:?}");
        }
    }

    // The signature GitHub would send verifies; the same over a changed body does not.
    let signature = format!("sha256={}", sign(SECRET, body));
    let signed = Headers::new([("X-Hub-Signature-256", signature.as_str())]);
    assert!(verify(Provider::Github, &signed, body, Some(SECRET)).is_ok());
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert!(verify(Provider::Github, &signed, &changed, Some(SECRET)).is_err());

    if let Ok(pattern) = head.parse::<BranchPattern>() {
        let _ = pattern.matches(&String::from_utf8_lossy(body));
    }
});
