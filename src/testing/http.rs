//! A tiny HTTP/1.1 client for test probes, and the checks a probe makes on an answer.
//!
//! Probes talk to services on the local stack, so plain `http://` over a
//! `tokio::net::TcpStream` is enough: one request, `Connection: close`, the whole answer read
//! until the server closes (or `Content-Length` is reached), chunked bodies decoded.
//! `https://` is refused with a clear message rather than half-supported.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::manifest::HttpProbe;

/// The most of an answer a probe reads; a health endpoint is far smaller.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// Why a request got no answer, or an answer that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("`{url}` is not supported: only http:// URLs are, https:// is not")]
    Unsupported { url: String },
    #[error("`{url}` is not a valid http:// URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to {authority}: {reason}")]
    Connect { authority: String, reason: String },
    #[error("request to {url} failed: {reason}")]
    Transfer { url: String, reason: String },
    #[error("answer from {url} is not valid HTTP: {reason}")]
    Malformed { url: String, reason: String },
}

/// An `http://host[:port]/path` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `url`; anything but `http://` is refused.
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = |reason: &str| HttpError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(HttpError::Unsupported {
                url: url.to_string(),
            });
        }
        if !lower.starts_with("http://") {
            return Err(bad("it must start with http://"));
        }
        let rest = &url["http://".len()..];
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        // Drop a fragment: it is never sent.
        let path = path.split('#').next().unwrap_or("/").to_string();
        if authority.is_empty() {
            return Err(bad("it has no host"));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            // [::1]:8080
            let end = inner
                .find(']')
                .ok_or_else(|| bad("unclosed `[` in the host"))?;
            let host = &inner[..end];
            let port = match inner[end + 1..].strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
                None => 80,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| bad("the port is not a number"))?,
                ),
                None => (authority.to_string(), 80),
            }
        };
        Ok(Url { host, port, path })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An answer: status code and body (headers are not needed by any check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends one request and reads the answer.
pub async fn request(method: &str, url: &str, body: Option<&str>) -> Result<Response, HttpError> {
    let u = Url::parse(url)?;
    let authority = u.authority();
    let mut stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| HttpError::Connect {
            authority: authority.clone(),
            reason: e.to_string(),
        })?;
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: sanctuary\r\nAccept: */*\r\nConnection: close\r\n",
        u.path
    );
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    let transfer = |e: std::io::Error| HttpError::Transfer {
        url: url.to_string(),
        reason: e.to_string(),
    };
    stream.write_all(req.as_bytes()).await.map_err(transfer)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await.map_err(transfer)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_RESPONSE || complete(&raw, method == "HEAD") {
            break;
        }
    }
    parse_response(&raw, method == "HEAD").map_err(|reason| HttpError::Malformed {
        url: url.to_string(),
        reason,
    })
}

fn header_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

fn is_chunked(head: &str) -> bool {
    head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    })
}

/// Whether `raw` holds a whole answer already, so a server that keeps the connection open
/// despite `Connection: close` does not stall the probe.
fn complete(raw: &[u8], head_only: bool) -> bool {
    let Some(end) = header_end(raw) else {
        return false;
    };
    if head_only {
        return true;
    }
    let head = String::from_utf8_lossy(&raw[..end]);
    if is_chunked(&head) {
        return raw.ends_with(b"0\r\n\r\n");
    }
    content_length(&head).is_some_and(|n| raw.len() - end >= n)
}

/// Splits a raw answer into status and body.
pub fn parse_response(raw: &[u8], head_only: bool) -> Result<Response, String> {
    let end = header_end(raw).ok_or("the headers never ended")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        return Err(format!("bad status line `{status_line}`"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    if head_only {
        return Ok(Response {
            status,
            body: String::new(),
        });
    }
    let mut body = raw[end..].to_vec();
    if is_chunked(&head) {
        body = dechunk(&body)?;
    } else if let Some(n) = content_length(&head) {
        body.truncate(n);
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line never ended")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size `{size_text}`"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("a chunk is shorter than its size".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
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
        }
    }

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            Url::parse("http://127.0.0.1:3000/health?x=1").unwrap(),
            Url {
                host: "127.0.0.1".into(),
                port: 3000,
                path: "/health?x=1".into()
            }
        );
        assert_eq!(Url::parse("http://beta").unwrap().port, 80);
        assert_eq!(Url::parse("http://beta").unwrap().path, "/");
        assert_eq!(Url::parse("http://[::1]:81/a").unwrap().host, "::1");
        assert!(matches!(
            Url::parse("https://x/"),
            Err(HttpError::Unsupported { .. })
        ));
        assert!(matches!(
            Url::parse("ftp://x/"),
            Err(HttpError::BadUrl { .. })
        ));
        assert!(matches!(
            Url::parse("http://x:port/"),
            Err(HttpError::BadUrl { .. })
        ));
    }

    #[test]
    fn responses_parse_with_length_and_chunks() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "abcde"));
        assert!(parse_response(b"garbage\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n", false).is_err());
        assert!(complete(
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false
        ));
        assert!(!complete(
            b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok",
            false
        ));
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
        let r = request("POST", &format!("http://127.0.0.1:{port}/x"), Some("{}"))
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "hello"));
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /x HTTP/1.1\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\n{}"), "{req}");
    }
}
