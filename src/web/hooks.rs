//! `POST /hooks/{key}`: the service the key names verifies the request over its raw body
//! ([`webhook::receive`]), a matching push is queued and answered `202` at once, everything
//! else is answered and logged: unknown key `404`, bad signature `401`, malformed body `400`,
//! body over the limit `413`; pings, other branches, tags and branch deletions `200`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::{error, info, warn};

use super::AppState;
use crate::deploy::service::blocking::run_blocking;
use crate::deploy::service::model::{NewDeploy, Service};
use crate::deploy::service::store::{DeployStore, DeployStoreError};
use crate::deploy::service::webhook::{self, Headers, PushEvent, WebhookEvent};

pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let store = Arc::clone(state.queue.store());
    let lookup = {
        let key = key.clone();
        run_blocking(move || lookup(&store, &key)).await
    };
    let (service, secret) = match lookup {
        Ok(Some(found)) => found,
        Ok(None) => {
            // Never log the key itself: it is the URL's credential.
            warn!(key_chars = key.len(), "webhook for an unknown key");
            return answer(StatusCode::NOT_FOUND, "no such hook");
        }
        Err(error) => {
            error!(%error, "cannot look the webhook's service up");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "store error");
        }
    };
    let name = service.name.clone();
    let body = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => {
            warn!(service = name, %error, limit = state.max_body_bytes, "webhook body refused");
            return answer(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
    };
    let pairs = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let event = match webhook::receive(
        service.provider,
        &Headers::new(pairs),
        &body,
        secret.as_ref().map(|s| s.as_bytes()),
        state.max_body_bytes,
    ) {
        Ok(event) => event,
        Err(error) => {
            warn!(service = name, %error, "webhook refused");
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return answer(status, &error.to_string());
        }
    };
    if !service.enabled {
        info!(service = name, "webhook for a disabled service ignored");
        return answer(StatusCode::OK, "ignored: the service is disabled");
    }
    match event {
        WebhookEvent::Ping {
            provider,
            delivery_id,
        } => {
            info!(service = name, %provider, delivery_id, "webhook ping");
            answer(StatusCode::OK, "pong")
        }
        WebhookEvent::Ignored {
            provider,
            delivery_id,
            event,
        } => {
            info!(service = name, %provider, delivery_id, event, "webhook event ignored");
            answer(StatusCode::OK, &format!("ignored: {event} events"))
        }
        WebhookEvent::Push(pushes) => push(&state, service, pushes).await,
    }
}

/// The service and its webhook secret, by URL key.
fn lookup(
    store: &DeployStore,
    key: &str,
) -> Result<Option<(Service, Option<String>)>, DeployStoreError> {
    let Some(service) = store.services().by_hook_key(key)? else {
        return Ok(None);
    };
    let secret = store
        .services()
        .secrets(&service.name)?
        .webhook_secret
        .map(|s| s.expose().to_owned());
    Ok(Some((service, secret)))
}

/// Why a push is not deployed, if it is not.
fn ignore_reason(service: &Service, push: &PushEvent) -> Option<String> {
    if push.is_tag {
        return Some(format!("tag push {}", push.git_ref));
    }
    if push.is_branch_deletion {
        return Some(format!("branch deletion {}", push.git_ref));
    }
    match &push.branch {
        Some(branch) if service.branch.matches(branch) => None,
        Some(branch) => Some(format!("push to {branch}, not {}", service.branch.as_str())),
        None => Some(format!("push to {}", push.git_ref)),
    }
}

async fn push(state: &AppState, service: Service, pushes: Vec<PushEvent>) -> Response {
    let name = service.name.clone();
    let mut queued = Vec::new();
    let mut duplicates = 0;
    let mut ignored = Vec::new();
    for push in pushes {
        if let Some(reason) = ignore_reason(&service, &push) {
            info!(
                service = name,
                delivery_id = push.delivery_id,
                pusher = push.pusher,
                commit = push.after,
                "push ignored: {reason}"
            );
            ignored.push(reason);
            continue;
        }
        let new = NewDeploy {
            branch: push.branch.clone(),
            commit_from: Some(push.before.clone()).filter(|b| !b.bytes().all(|c| c == b'0')),
            commit_to: push.after.clone(),
            delivery_id: Some(push.delivery_id.clone()),
            user: Some(push.pusher.clone()).filter(|p| !p.is_empty()),
            user_email: push.pusher_email.clone(),
            commits: push.commits,
        };
        let store = Arc::clone(state.queue.store());
        let service_name = name.clone();
        let result = run_blocking(move || store.deploys().queue(&service_name, &new)).await;
        match result {
            Ok(Some(id)) => {
                info!(
                    service = name,
                    deploy = id,
                    delivery_id = push.delivery_id,
                    pusher = push.pusher,
                    commit = push.after,
                    "deploy queued"
                );
                queued.push(id);
            }
            Ok(None) => {
                info!(
                    service = name,
                    delivery_id = push.delivery_id,
                    "delivery already queued; not deploying it twice"
                );
                duplicates += 1;
            }
            Err(error) => {
                error!(service = name, %error, "cannot queue the deploy");
                return answer(StatusCode::INTERNAL_SERVER_ERROR, "cannot queue the deploy");
            }
        }
    }
    if !queued.is_empty() {
        state.queue.wake();
        let ids: Vec<String> = queued.iter().map(i64::to_string).collect();
        return answer(
            StatusCode::ACCEPTED,
            &format!("queued deploy {}", ids.join(", ")),
        );
    }
    if duplicates > 0 {
        return answer(StatusCode::OK, "duplicate delivery: already queued");
    }
    answer(StatusCode::OK, &format!("ignored: {}", ignored.join("; ")))
}

fn answer(status: StatusCode, text: &str) -> Response {
    (status, format!("{text}\n")).into_response()
}
