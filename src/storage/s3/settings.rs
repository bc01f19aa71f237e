//! What an operator writes to reach a bucket ([`S3Settings`]), checked and resolved into what the
//! backend needs: the bucket's URL, the credentials, the key prefix, the part size.
//!
//! Credentials come from the first of: `access_key_id` + `secret_access_key` in the settings,
//! the `credentials_file`, or the environment variables `AWS_ACCESS_KEY_ID` +
//! `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`). Instance roles and profiles are not read:
//! a server that finds no key says so at start rather than guessing.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The multipart part size when the settings name none, in MiB.
const DEFAULT_PART_SIZE_MIB: usize = 8;

/// S3's smallest part (all parts but the last must be at least this), in MiB.
const MIN_PART_SIZE_MIB: usize = 5;

/// S3's largest part, in MiB (5 GiB).
const MAX_PART_SIZE_MIB: usize = 5 * 1024;

/// How many objects a directory rename may copy when the settings name no limit.
const DEFAULT_RENAME_DIR_LIMIT: usize = 1000;

/// Where the `s3` backend keeps its files: a bucket on AWS S3 or on an S3-compatible store.
///
/// ```toml
/// bucket = "ftp"
/// endpoint = "http://127.0.0.1:3900"   # omit for AWS
/// region = "garage"
/// path_style = true                    # self-hosted stores
/// allow_http = true                    # only on a trusted network
/// credentials_file = "/etc/ferry/s3.toml"
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The bucket's name.
    pub bucket: String,
    /// A key prefix under which the homes live (`ftp/` puts `alice`'s files under
    /// `ftp/alice/`); none puts homes at the top of the bucket.
    pub prefix: Option<String>,
    /// The store's URL, like `http://127.0.0.1:3900`; none means AWS S3 in `region`.
    pub endpoint: Option<String>,
    /// The region requests are signed for; `us-east-1` when none is given.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// A TOML file with `access_key_id = "..."` and `secret_access_key = "..."` (and optionally
    /// `session_token = "..."`), so the secret stays out of the main configuration.
    pub credentials_file: Option<PathBuf>,
    /// Path-style URLs (`ENDPOINT/BUCKET/KEY`) instead of virtual-hosted ones
    /// (`BUCKET.HOST/KEY`): what most self-hosted stores (Garage, MinIO) expect.
    #[serde(default)]
    pub path_style: bool,
    /// Allows a plain `http://` endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// Size of the parts a large upload is sent in, in MiB: 8 when none is given, at least 5.
    /// Each upload holds up to three parts in memory.
    pub part_size_mib: Option<usize>,
    /// The most objects a directory rename may copy (1000 when none is given): object storage
    /// renames a directory by copying every object below it.
    pub rename_dir_limit: Option<usize>,
}

impl fmt::Debug for S3Settings {
    /// Everything but the secret, which shows only whether it is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .field("credentials_file", &self.credentials_file)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("part_size_mib", &self.part_size_mib)
            .field("rename_dir_limit", &self.rename_dir_limit)
            .finish()
    }
}

/// Why the `s3` backend cannot start. Each message says what to set.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("no S3 bucket: set `bucket` to the name of the bucket that holds the homes")]
    MissingBucket,
    #[error(
        "no S3 credentials: set access_key_id and secret_access_key, or credentials_file, or \
         the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    NoCredentials,
    #[error(
        "incomplete S3 credentials: access_key_id and secret_access_key must both be set \
         ({0} is missing)"
    )]
    HalfCredentials(&'static str),
    #[error("cannot use the S3 credentials file {path}: {reason}")]
    CredentialsFile { path: PathBuf, reason: String },
    #[error("bad S3 endpoint {endpoint:?}: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error("bad S3 setting: {0}")]
    BadSetting(String),
    #[error("cannot set up the S3 client: {0}")]
    Client(String),
    #[error("the S3 bucket {bucket:?} at {url} cannot be used: {reason}")]
    Unreachable {
        bucket: String,
        url: String,
        reason: String,
    },
}

/// An access key, resolved from the settings, a file or the environment.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Credentials {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The format of `credentials_file`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// Settings checked and resolved: what the backend is built from.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    pub bucket: String,
    /// The URL objects are found under: `BUCKET_URL/KEY`.
    pub bucket_url: String,
    /// What `object_store` is given as the endpoint (it adds the bucket for path-style).
    pub endpoint: Option<String>,
    pub virtual_hosted: bool,
    pub region: String,
    pub allow_http: bool,
    pub credentials: Credentials,
    /// `""` or `a/b/`: the key prefix of every home.
    pub prefix: String,
    pub part_size: usize,
    pub rename_dir_limit: usize,
}

impl S3Settings {
    /// Checks the settings and resolves the credentials, reading the environment through `env`.
    pub(super) fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Resolved, S3Error> {
        let bucket = self.bucket.trim();
        if bucket.is_empty() {
            return Err(S3Error::MissingBucket);
        }
        if bucket.contains(['/', ' ']) {
            return Err(S3Error::BadSetting(format!(
                "bucket {bucket:?}: a bucket name has no slashes or spaces (use `prefix` for a \
                 folder inside the bucket)"
            )));
        }
        let region = self
            .region
            .clone()
            .filter(|region| !region.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let (bucket_url, endpoint, virtual_hosted) = self.urls(bucket, &region)?;
        let part_size_mib = self.part_size_mib.unwrap_or(DEFAULT_PART_SIZE_MIB);
        if !(MIN_PART_SIZE_MIB..=MAX_PART_SIZE_MIB).contains(&part_size_mib) {
            return Err(S3Error::BadSetting(format!(
                "part_size_mib = {part_size_mib}: S3 parts are {MIN_PART_SIZE_MIB} to \
                 {MAX_PART_SIZE_MIB} MiB"
            )));
        }
        Ok(Resolved {
            bucket: bucket.to_owned(),
            bucket_url,
            endpoint,
            virtual_hosted,
            region,
            allow_http: self.allow_http,
            credentials: self.credentials(env)?,
            prefix: key_prefix(self.prefix.as_deref().unwrap_or(""))?,
            part_size: part_size_mib * 1024 * 1024,
            rename_dir_limit: self.rename_dir_limit.unwrap_or(DEFAULT_RENAME_DIR_LIMIT),
        })
    }

    /// The bucket's URL, the endpoint for `object_store`, and whether URLs are virtual-hosted.
    fn urls(&self, bucket: &str, region: &str) -> Result<(String, Option<String>, bool), S3Error> {
        let Some(endpoint) = &self.endpoint else {
            let url = if self.path_style {
                format!("https://s3.{region}.amazonaws.com/{bucket}")
            } else {
                format!("https://{bucket}.s3.{region}.amazonaws.com")
            };
            return Ok((url, None, !self.path_style));
        };
        let bad = |reason: &str| S3Error::BadEndpoint {
            endpoint: endpoint.clone(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(endpoint)
            .map_err(|error| bad(&format!("{error} (write it like http://127.0.0.1:3900)")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(bad(
                    "plain HTTP sends every file unencrypted: set allow_http = true to use it \
                     anyway (only on a trusted network), or use https://",
                ));
            }
            _ => return Err(bad("the endpoint must be an http:// or https:// URL")),
        }
        let Some(host) = url.host_str() else {
            return Err(bad("the endpoint names no host"));
        };
        if url.path() != "/" || url.query().is_some() {
            return Err(bad(
                "the endpoint is the store's base URL, without a path (the bucket goes in \
                 `bucket`, a folder in `prefix`)",
            ));
        }
        let port = url
            .port()
            .map(|port| format!(":{port}"))
            .unwrap_or_default();
        if self.path_style {
            let base = format!("{}://{host}{port}", url.scheme());
            Ok((format!("{base}/{bucket}"), Some(base), false))
        } else {
            // object_store expects a virtual-hosted endpoint to name the bucket already.
            let bucket_url = format!("{}://{bucket}.{host}{port}", url.scheme());
            Ok((bucket_url.clone(), Some(bucket_url), true))
        }
    }

    fn credentials(&self, env: impl Fn(&str) -> Option<String>) -> Result<Credentials, S3Error> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(key_id), Some(secret)) => {
                return Ok(Credentials {
                    key_id: key_id.clone(),
                    secret: secret.clone(),
                    token: None,
                });
            }
            (Some(_), None) => return Err(S3Error::HalfCredentials("secret_access_key")),
            (None, Some(_)) => return Err(S3Error::HalfCredentials("access_key_id")),
            (None, None) => {}
        }
        if let Some(path) = &self.credentials_file {
            return read_credentials_file(path);
        }
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key_id), Some(secret)) => Ok(Credentials {
                key_id,
                secret,
                token: env("AWS_SESSION_TOKEN"),
            }),
            _ => Err(S3Error::NoCredentials),
        }
    }
}

fn read_credentials_file(path: &Path) -> Result<Credentials, S3Error> {
    let failed = |reason: String| S3Error::CredentialsFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
    // toml's message quotes the offending line, which may hold the secret: say only where.
    let file: CredentialsFile = toml::from_str(&text).map_err(|error| {
        let at = error
            .span()
            .map(|span| format!(" at byte {}", span.start))
            .unwrap_or_default();
        failed(format!(
            "not a TOML file with access_key_id = \"...\" and secret_access_key = \"...\"{at}"
        ))
    })?;
    Ok(Credentials {
        key_id: file.access_key_id,
        secret: file.secret_access_key,
        token: file.session_token,
    })
}

/// `prefix` as a key prefix: `""`, or its segments joined by `/` with a trailing `/`.
fn key_prefix(prefix: &str) -> Result<String, S3Error> {
    let mut key = String::new();
    for segment in prefix.split('/').filter(|segment| !segment.is_empty()) {
        if object_store::path::PathPart::parse(segment).is_err() {
            return Err(S3Error::BadSetting(format!(
                "prefix {prefix:?}: `.`, `..` and control characters cannot be part of a key"
            )));
        }
        key.push_str(segment);
        key.push('/');
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> S3Settings {
        S3Settings {
            bucket: "ftp".to_owned(),
            access_key_id: Some("GKexample".to_owned()),
            secret_access_key: Some("very secret".to_owned()),
            ..S3Settings::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", minimal());
        assert!(!shown.contains("very secret"), "{shown}");
        assert!(
            shown.contains("<hidden>") && shown.contains("GKexample"),
            "{shown}"
        );
    }

    #[test]
    fn defaults_are_aws_virtual_hosted_with_8_mib_parts() {
        let resolved = minimal().resolve(no_env).unwrap();
        assert_eq!(
            resolved.bucket_url,
            "https://ftp.s3.us-east-1.amazonaws.com"
        );
        assert!(resolved.virtual_hosted);
        assert_eq!(resolved.endpoint, None);
        assert_eq!(resolved.part_size, 8 * 1024 * 1024);
        assert_eq!(resolved.rename_dir_limit, 1000);
        assert_eq!(resolved.prefix, "");
    }

    #[test]
    fn path_style_endpoint_puts_the_bucket_in_the_path() {
        let settings = S3Settings {
            endpoint: Some("http://127.0.0.1:3900/".to_owned()),
            path_style: true,
            allow_http: true,
            prefix: Some("/homes//ftp/".to_owned()),
            ..minimal()
        };
        let resolved = settings.resolve(no_env).unwrap();
        assert_eq!(resolved.bucket_url, "http://127.0.0.1:3900/ftp");
        assert_eq!(resolved.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(resolved.prefix, "homes/ftp/");
        let hosted = S3Settings {
            path_style: false,
            endpoint: Some("https://s3.example.net".to_owned()),
            ..settings
        };
        let resolved = hosted.resolve(no_env).unwrap();
        assert_eq!(resolved.bucket_url, "https://ftp.s3.example.net");
    }

    #[test]
    fn each_mistake_says_what_to_set() {
        let message = |settings: S3Settings| settings.resolve(no_env).unwrap_err().to_string();
        let no_bucket = message(S3Settings {
            bucket: String::new(),
            ..minimal()
        });
        assert!(no_bucket.contains("set `bucket`"), "{no_bucket}");
        let plain_http = message(S3Settings {
            endpoint: Some("http://127.0.0.1:3900".to_owned()),
            ..minimal()
        });
        assert!(plain_http.contains("allow_http = true"), "{plain_http}");
        let no_url = message(S3Settings {
            endpoint: Some("127.0.0.1:3900".to_owned()),
            ..minimal()
        });
        assert!(no_url.contains("http://127.0.0.1:3900"), "{no_url}");
        let small_parts = message(S3Settings {
            part_size_mib: Some(4),
            ..minimal()
        });
        assert!(small_parts.contains("5 to 5120 MiB"), "{small_parts}");
        let nothing = message(S3Settings {
            access_key_id: None,
            secret_access_key: None,
            ..minimal()
        });
        assert!(nothing.contains("AWS_ACCESS_KEY_ID"), "{nothing}");
        let half = message(S3Settings {
            secret_access_key: None,
            ..minimal()
        });
        assert!(half.contains("secret_access_key is missing"), "{half}");
        let dot = message(S3Settings {
            prefix: Some("a/../b".to_owned()),
            ..minimal()
        });
        assert!(dot.contains("prefix"), "{dot}");
    }

    #[test]
    fn credentials_come_from_the_file_then_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3.toml");
        std::fs::write(
            &file,
            "access_key_id = \"GKfile\"\nsecret_access_key = \"from file\"\n",
        )
        .unwrap();
        let from_file = S3Settings {
            access_key_id: None,
            secret_access_key: None,
            credentials_file: Some(file.clone()),
            ..minimal()
        };
        let resolved = from_file.resolve(no_env).unwrap();
        assert_eq!(resolved.credentials.key_id, "GKfile");
        assert_eq!(resolved.credentials.secret, "from file");

        std::fs::write(&file, "access_key_id = \"GKfile\"\nsecret = \"oops\"\n").unwrap();
        let error = from_file.resolve(no_env).unwrap_err().to_string();
        assert!(!error.contains("oops"), "the secret stays out: {error}");
        assert!(error.contains("secret_access_key = "), "{error}");

        let from_env = S3Settings {
            access_key_id: None,
            secret_access_key: None,
            ..minimal()
        };
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("GKenv".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("from env".to_owned()),
            "AWS_SESSION_TOKEN" => Some("token".to_owned()),
            _ => None,
        };
        let resolved = from_env.resolve(env).unwrap();
        assert_eq!(resolved.credentials.key_id, "GKenv");
        assert_eq!(resolved.credentials.token.as_deref(), Some("token"));
    }

    #[test]
    fn settings_parse_from_toml_and_refuse_unknown_keys() {
        let settings: S3Settings = toml::from_str(
            "bucket = \"ftp\"\nendpoint = \"http://127.0.0.1:3900\"\npath_style = true\n",
        )
        .unwrap();
        assert_eq!(settings.bucket, "ftp");
        assert!(settings.path_style && !settings.allow_http);
        assert!(toml::from_str::<S3Settings>("bucket = \"ftp\"\nbukket = \"x\"\n").is_err());
    }
}
