//! Signed S3 requests that `object_store` cannot express: its paths never end in `/`, so the
//! zero-byte `dir/` objects that mark empty directories are created and removed here.
//!
//! Requests are signed with `object_store`'s own [`AwsAuthorizer`] and the store's credential
//! provider, and sent with reqwest; a failed connection or a 5xx answer is tried again a few
//! times, as `object_store` does for its own requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::HttpRequestBody;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::storage::{StorageError, StorageResult};

/// How S3 wants a key in a URL: everything but unreserved characters percent-encoded, except the
/// `/` between segments (as `object_store` encodes its own keys, so signatures agree).
const KEY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Attempts per request: the first and two more after a failed connection or a 5xx answer.
const ATTEMPTS: u32 = 3;

/// Sends signed requests to one bucket.
#[derive(Debug, Clone)]
pub(super) struct RawS3 {
    http: reqwest::Client,
    credentials: AwsCredentialProvider,
    bucket_url: Arc<str>,
    region: Arc<str>,
}

/// An answer: its status and its body (markers and listings are small).
#[derive(Debug)]
pub(super) struct RawResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl RawS3 {
    pub fn new(
        credentials: AwsCredentialProvider,
        bucket_url: &str,
        region: &str,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            credentials,
            bucket_url: bucket_url.into(),
            region: region.into(),
        })
    }

    /// Creates the marker of a directory; `prefix` ends with `/`.
    pub async fn put_marker(&self, prefix: &str) -> StorageResult<()> {
        self.expect_success(Method::PUT, prefix).await
    }

    /// Removes the marker of a directory (a missing marker is no error, as in S3).
    pub async fn delete_marker(&self, prefix: &str) -> StorageResult<()> {
        self.expect_success(Method::DELETE, prefix).await
    }

    async fn expect_success(&self, method: Method, key: &str) -> StorageResult<()> {
        let url = self.object_url(key);
        let response = self.send(method.clone(), &url).await?;
        if response.status.is_success() {
            Ok(())
        } else {
            Err(status_error(&method, key, &response))
        }
    }

    /// The URL of the object `key`.
    pub fn object_url(&self, key: &str) -> String {
        format!(
            "{}/{}",
            self.bucket_url,
            utf8_percent_encode(key, KEY_ENCODE_SET)
        )
    }

    /// The URL of the bucket itself, with a query (like `?uploads&prefix=...`).
    #[cfg(test)]
    pub fn bucket_url(&self, query: &str) -> String {
        format!("{}/{query}", self.bucket_url)
    }

    /// Sends one signed, bodiless request, trying again after a failed connection or a 5xx.
    pub async fn send(&self, method: Method, url: &str) -> StorageResult<RawResponse> {
        let mut attempt = 1;
        loop {
            match self.send_once(method.clone(), url).await {
                Ok(response) if response.status.is_server_error() && attempt < ATTEMPTS => {}
                Ok(response) => return Ok(response),
                Err(error) if attempt < ATTEMPTS => {
                    tracing::debug!(%url, %error, attempt, "S3 request failed, trying again");
                }
                Err(error) => {
                    return Err(StorageError::Unavailable(format!(
                        "object store request failed: {error}"
                    )));
                }
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, method: Method, url: &str) -> Result<RawResponse, String> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|error| error.to_string())?;
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|error| error.to_string())?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|error| error.to_string())?;
        let response = self
            .http
            .request(method, url)
            .headers(request.headers().clone())
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| error.to_string())?;
        Ok(RawResponse { status, body })
    }
}

/// An unexpected answer as a storage error, with the store's own message.
fn status_error(method: &Method, key: &str, response: &RawResponse) -> StorageError {
    let detail = String::from_utf8_lossy(&response.body[..response.body.len().min(512)]);
    let message = format!("{method} {key:?}: {} {detail}", response.status);
    tracing::warn!(%message, "object store refused a request");
    match response.status {
        StatusCode::NOT_FOUND => StorageError::NotFound,
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => StorageError::Io(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            message,
        )),
        _ => StorageError::Unavailable(message),
    }
}
