//! The HTTP client of sanctuary (test probes now; webhooks and exports share it), and the
//! checks a probe makes on an answer.
//!
//! One well-kept client (`reqwest` on rustls, the system's CA certificates): `http://` and
//! `https://`, redirects followed, chunked and compressed bodies handled by it. A probe may
//! trust one more CA file (a stack's own CA) or, for a self-signed test host, any
//! certificate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manifest::HttpProbe;

/// The most of an answer a probe keeps; a health endpoint is far smaller.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;
/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no answer, or an answer that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("`{url}` is not a valid http:// or https:// URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot read the CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("request to {url} failed: {reason}")]
    Transfer { url: String, reason: String },
}

/// How a request trusts an `https://` server beyond the system's CA certificates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trust<'a> {
    /// A PEM file of more CA certificates to trust.
    pub ca_file: Option<&'a Path>,
    /// Accept any certificate.
    pub insecure: bool,
}

/// An answer: status code and body (headers are not needed by any check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// A client that trusts as `trust` says.
pub fn client(trust: Trust<'_>) -> Result<reqwest::Client, HttpError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("sanctuary/", env!("CARGO_PKG_VERSION")))
        .timeout(REQUEST_TIMEOUT);
    if let Some(path) = trust.ca_file {
        let ca_err = |reason: String| HttpError::CaFile {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("it holds no PEM certificate".into()));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if trust.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| HttpError::Transfer {
        url: String::new(),
        reason: e.to_string(),
    })
}

/// Sends one request and reads the answer (a JSON `body` when given).
pub async fn request(
    method: &str,
    url: &str,
    body: Option<&str>,
    trust: Trust<'_>,
) -> Result<Response, HttpError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| HttpError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HttpError::BadUrl {
            url: url.to_string(),
            reason: format!("the scheme is {}", parsed.scheme()),
        });
    }
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| HttpError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let mut req = client(trust)?.request(method, parsed);
    if let Some(b) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b.to_string());
    }
    let transfer = |e: reqwest::Error| HttpError::Transfer {
        url: url.to_string(),
        // With the causes reqwest keeps underneath (a refused connection, a certificate
        // that is not trusted).
        reason: crate::exec::chain(&e),
    };
    let mut answer = req.send().await.map_err(transfer)?;
    let status = answer.status().as_u16();
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(transfer)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_RESPONSE {
            bytes.truncate(MAX_RESPONSE);
            break;
        }
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// The value at a dot path (`status`, `a.b.0.c`: numbers index arrays) in a JSON text.
pub fn json_path<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(value, |v, seg| match v {
            serde_json::Value::Object(map) => map.get(seg),
            serde_json::Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// Checks an answer against a probe's expectations; `Err` says what did not match.
pub fn check(probe: &HttpProbe, response: &Response) -> Result<(), String> {
    if response.status != probe.status {
        return Err(format!(
            "expected status {}, got {}",
            probe.status, response.status
        ));
    }
    if let Some(needle) = &probe.contains {
        if !response.body.contains(needle.as_str()) {
            return Err(format!("the body does not contain `{needle}`"));
        }
    }
    if let Some(path) = &probe.json_path {
        let doc: serde_json::Value = serde_json::from_str(&response.body).map_err(|e| {
            format!("the body is not JSON ({e}), so json-path `{path}` cannot be read")
        })?;
        let found = json_path(&doc, path)
            .ok_or_else(|| format!("json-path `{path}` is not in the body"))?;
        if let Some(expected) = &probe.equals {
            // A string compares with its text; anything else with its JSON form (`3`, `true`).
            let actual = match found {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if &actual != expected {
                return Err(format!(
                    "json-path `{path}` is `{actual}`, expected `{expected}`"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Duration;
    use crate::manifest::HttpMethod;
    use std::time::Duration as StdDuration;

    fn probe() -> HttpProbe {
        HttpProbe {
            url: "http://127.0.0.1:1/".into(),
            method: HttpMethod::Get,
            status: 200,
            contains: None,
            json_path: None,
            equals: None,
            body: None,
            retries: 0,
            delay: Duration(StdDuration::ZERO),
            ca_file: None,
            insecure: false,
        }
    }

    #[test]
    fn json_paths_walk_objects_and_arrays() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"status":"running","a":{"b":[{"c":3}]}}"#).unwrap();
        assert_eq!(json_path(&v, "status").unwrap(), "running");
        assert_eq!(json_path(&v, "a.b.0.c").unwrap(), 3);
        assert!(json_path(&v, "a.b.1.c").is_none());
        assert!(json_path(&v, "status.x").is_none());
    }

    #[test]
    fn checks_compare_status_body_and_json() {
        let ok = Response {
            status: 200,
            body: r#"{"status":"running","n":3}"#.into(),
        };
        assert!(check(&probe(), &ok).is_ok());
        let mut p = probe();
        p.status = 204;
        assert!(check(&p, &ok)
            .unwrap_err()
            .contains("expected status 204, got 200"));
        let mut p = probe();
        p.contains = Some("stopped".into());
        assert!(check(&p, &ok).unwrap_err().contains("does not contain"));
        let mut p = probe();
        p.json_path = Some("status".into());
        p.equals = Some("running".into());
        assert!(check(&p, &ok).is_ok());
        p.json_path = Some("n".into());
        p.equals = Some("3".into());
        assert!(check(&p, &ok).is_ok());
        p.equals = Some("4".into());
        assert!(check(&p, &ok).unwrap_err().contains("is `3`, expected `4`"));
        let text = Response {
            status: 200,
            body: "running".into(),
        };
        assert!(check(&p, &text).unwrap_err().contains("not JSON"));
    }

    #[tokio::test]
    async fn requests_reach_a_local_server() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello")
                .await
                .unwrap();
            req
        });
        let r = request(
            "POST",
            &format!("http://127.0.0.1:{port}/x"),
            Some("{}"),
            Trust::default(),
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "hello"));
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /x HTTP/1.1\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\n{}"), "{req}");
    }

    #[tokio::test]
    async fn bad_urls_and_ca_files_say_what_is_wrong() {
        let e = request("GET", "ftp://x/", None, Trust::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("the scheme is ftp"), "{e}");
        let e = request("GET", "http://x:port/", None, Trust::default())
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::BadUrl { .. }), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let trust = Trust {
            ca_file: Some(&not_pem),
            insecure: false,
        };
        let e = request("GET", "https://127.0.0.1:1/", None, trust)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot read the CA file"), "{e}");
        let missing = dir.path().join("missing.pem");
        let trust = Trust {
            ca_file: Some(&missing),
            insecure: false,
        };
        let e = request("GET", "https://127.0.0.1:1/", None, trust)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
