//! `secret` nodes: exactly one source (env, file, keychain, libsecret).

use super::*;

pub(super) fn resolve_secret(r: &mut Resolver, s: &raw::Secret) -> Option<Secret> {
    let sources = [
        s.env.is_some(),
        s.file.is_some(),
        s.keychain.is_some(),
        s.libsecret.is_some(),
    ];
    let source = match sources.iter().filter(|b| **b).count() {
        1 => Some(if let Some(e) = &s.env {
            SecretSource::Env(e.to_string())
        } else if let Some(f) = &s.file {
            SecretSource::File(r.path(f))
        } else if let Some(k) = &s.keychain {
            SecretSource::Keychain {
                service: k.service.to_string(),
                account: k.account.as_ref().map(|a| a.to_string()),
            }
        } else {
            let attrs = s
                .libsecret
                .as_ref()
                .map(|l| l.attributes.clone())
                .unwrap_or_default();
            if attrs.is_empty() {
                r.err(
                    Diag::error(format!(
                        "secret `{}`: libsecret needs attributes to find the item",
                        &*s.name
                    ))
                    .label(at(s.name.span()), "no attributes")
                    .help("libsecret service=\"anthropic\" account=\"me\""),
                );
            }
            SecretSource::Libsecret(attrs)
        }),
        0 => {
            r.err(
                Diag::error(format!("secret `{}` has no source", &*s.name))
                    .label(at(s.name.span()), "no source")
                    .help("give one of: env \"VAR\", file \"path\", keychain service=\"…\", libsecret key=\"value\""),
            );
            None
        }
        _ => {
            r.err(
                Diag::error(format!("secret `{}` has more than one source", &*s.name))
                    .label(at(s.name.span()), "several sources")
                    .help("a secret comes from exactly one of env, file, keychain or libsecret"),
            );
            None
        }
    };
    Some(Secret {
        name: s.name.to_string(),
        span: span(&s.name),
        description: s.description.clone(),
        source: source?,
    })
}
