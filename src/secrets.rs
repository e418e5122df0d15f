//! Secret values: read from where the manifest says (environment, file, macOS Keychain,
//! libsecret) at the moment they are needed, handed to containers and tasks, and never
//! printed, stored or hashed without a key.

use std::path::PathBuf;
use std::process::Command;

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

/// Reads the value of secret `name`. The `.env` file beside the manifest counts as
/// environment, as it does for interpolation.
pub fn resolve(m: &Manifest, name: &str) -> Result<String, SecretError> {
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
