//! Secret values: read from where the manifest says (environment, file, macOS Keychain,
//! libsecret) at the moment they are needed, handed to containers and tasks, and never
//! printed, stored or hashed without a key.
//!
//! Every value read is remembered for the life of the process, and [`mask`] replaces it with
//! `***` in anything sanctuary prints or stores of what tasks, tests and services wrote — as
//! CI systems mask their secrets. A value of several lines is masked line by line too, since
//! output arrives a line at a time. Values shorter than [`MASK_MIN`] characters are not
//! masked: every `a` or `1` in the output would go.

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The shortest value (and line of a value) that is masked.
pub const MASK_MIN: usize = 3;

/// What [`mask`] replaces: every value read, and each line of multi-line values, longest
/// first so a value is masked whole before a part of it is.
static REVEALED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn remember(value: &str) {
    let mut known = REVEALED.lock().unwrap_or_else(|e| e.into_inner());
    let mut parts = vec![value.to_string()];
    if value.contains('\n') {
        parts.extend(value.lines().map(|l| l.trim().to_string()));
    }
    for p in parts {
        if p.chars().count() >= MASK_MIN && !known.contains(&p) {
            known.push(p);
        }
    }
    known.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// `text` with every secret value read so far replaced by `***`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let known = REVEALED.lock().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|v| text.contains(v.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for v in known.iter() {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), "***");
        }
    }
    Cow::Owned(out)
}

/// Every string inside `value` masked.
pub fn mask_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(mask(s).into_owned()),
        Value::Array(a) => Value::Array(a.iter().map(mask_json).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), mask_json(v))).collect())
        }
        other => other.clone(),
    }
}

use crate::manifest::{Manifest, SecretSource};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SecretError {
    #[error("secret `{secret}`: environment variable {var} is not set")]
    #[diagnostic(help(
        "export {var} before running sanctuary, or put it in a .env file beside the manifest"
    ))]
    EnvUnset { secret: String, var: String },
    #[error("secret `{secret}`: cannot read {}", path.display())]
    File {
        secret: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret `{secret}`: {tool} found nothing ({detail})")]
    Store {
        secret: String,
        tool: &'static str,
        detail: String,
    },
    #[error("undeclared secret `{0}`")]
    Undeclared(String),
}

/// Reads the value of secret `name` and remembers it for [`mask`]. The `.env` file beside
/// the manifest counts as environment, as it does for interpolation.
pub fn resolve(m: &Manifest, name: &str) -> Result<String, SecretError> {
    let value = read(m, name)?;
    remember(&value);
    Ok(value)
}

fn read(m: &Manifest, name: &str) -> Result<String, SecretError> {
    let secret = m
        .secrets
        .get(name)
        .ok_or_else(|| SecretError::Undeclared(name.to_string()))?;
    match &secret.source {
        SecretSource::Env(var) => std::env::var(var)
            .ok()
            .or_else(|| dotenv_value(&m.dir, var))
            .ok_or_else(|| SecretError::EnvUnset {
                secret: name.to_string(),
                var: var.clone(),
            }),
        SecretSource::File(path) => std::fs::read_to_string(path)
            // A trailing newline is an artefact of editors and `echo`, not part of the value.
            .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|source| SecretError::File {
                secret: name.to_string(),
                path: path.clone(),
                source,
            }),
        SecretSource::Keychain { service, account } => {
            let mut cmd = Command::new("security");
            cmd.args(["find-generic-password", "-w", "-s", service]);
            if let Some(a) = account {
                cmd.args(["-a", a]);
            }
            run_store(name, "security (macOS Keychain)", cmd)
        }
        SecretSource::Libsecret(attrs) => {
            let mut cmd = Command::new("secret-tool");
            cmd.arg("lookup");
            for (k, v) in attrs {
                cmd.args([k, v]);
            }
            run_store(name, "secret-tool (libsecret)", cmd)
        }
    }
}

fn run_store(secret: &str, tool: &'static str, mut cmd: Command) -> Result<String, SecretError> {
    let out = cmd.output().map_err(|e| SecretError::Store {
        secret: secret.to_string(),
        tool,
        detail: e.to_string(),
    })?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(SecretError::Store {
            secret: secret.to_string(),
            tool,
            detail: format!("exit status {}", out.status.code().unwrap_or(-1)),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim_end_matches(['\n', '\r'])
        .to_string())
}

fn dotenv_value(dir: &std::path::Path, var: &str) -> Option<String> {
    crate::manifest::read_dotenv(&dir.join(".env"))
        .ok()?
        .remove(var)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_whole_and_line_by_line_with_no_pattern_syntax() {
        remember("a.b*c+(d)[e]$^|{2}\\1");
        remember("first-line\nsecond-line");
        remember("ab");
        let line = "token=a.b*c+(d)[e]$^|{2}\\1 and abc";
        assert_eq!(mask(line), "token=*** and abc");
        assert_eq!(mask("got second-line here"), "got *** here");
        assert_eq!(mask("no secret, ab stays"), "no secret, ab stays");
        let v = serde_json::json!({"a": ["x first-line y"], "n": 3});
        assert_eq!(mask_json(&v), serde_json::json!({"a": ["x *** y"], "n": 3}));
    }
}
