//! `alert` nodes: one destination (a webhook or a command), the events it takes and how
//! long a delivery may take.

use super::*;

/// Default time one delivery may take.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn resolve_alert(r: &mut Resolver, a: &raw::Alert) -> Option<Alert> {
    let name = a.name.to_string();
    let role = format!("alert `{name}`");
    let sink = match (&a.webhook, &a.command) {
        (Some(w), None) => webhook(r, &role, w),
        (None, Some(c)) if c.argv.is_empty() => {
            r.err(
                Diag::error(format!("the command of {role} is empty"))
                    .label(at(&c.span), "no program")
                    .help("command \"/usr/local/bin/page-me\" \"--quiet\""),
            );
            None
        }
        (None, Some(c)) => Some(AlertSink::Command(c.argv.clone())),
        (Some(_), Some(c)) => {
            r.err(
                Diag::error(format!("{role} has both a webhook and a command"))
                    .label(at(&c.span), "second destination")
                    .help("declare one alert per destination"),
            );
            None
        }
        (None, None) => {
            r.err(
                Diag::error(format!("{role} has nowhere to send to"))
                    .label(at(a.name.span()), "no `webhook` or `command`")
                    .help("add `webhook url=\"https://hooks.example.com/sanctuary\"`"),
            );
            None
        }
    };
    let events = match &a.on {
        Some(on) if on.events.is_empty() => {
            r.err(
                Diag::error(format!("`on` of {role} names no event"))
                    .label(at(&on.span), "empty")
                    .help(format!(
                        "name some of: {}; or leave `on` out for all of them",
                        AlertEvent::ALL.map(|e| e.to_string()).join(", ")
                    )),
            );
            Default::default()
        }
        Some(on) => on.events.iter().map(|e| e.0).collect(),
        None => AlertEvent::ALL.into_iter().collect(),
    };
    Some(Alert {
        name,
        span: span(&a.name),
        description: a.description.clone(),
        sink: sink?,
        events,
        timeout: a.timeout.unwrap_or(Duration(DEFAULT_TIMEOUT)),
    })
}

fn webhook(r: &mut Resolver, role: &str, w: &raw::Webhook) -> Option<AlertSink> {
    let Some(url) = &w.url else {
        r.err(
            Diag::error(format!("the webhook of {role} has no url="))
                .label(at(&w.span), "no url")
                .help("webhook url=\"https://hooks.example.com/sanctuary\""),
        );
        return None;
    };
    let ok = match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => true,
        Ok(u) => {
            r.err(
                Diag::error(format!("webhook url `{}` is not http(s)", &**url))
                    .label(at(url.span()), format!("scheme `{}`", u.scheme()))
                    .help("webhooks are POSTed over http:// or https://"),
            );
            false
        }
        Err(e) => {
            r.err(
                Diag::error(format!("webhook url `{}` is malformed: {e}", &**url))
                    .label(at(url.span()), "not a URL")
                    .help("webhook url=\"https://hooks.example.com/sanctuary\""),
            );
            false
        }
    };
    let mut headers = Vec::new();
    for h in &w.headers {
        let value = match (&h.value, &h.secret) {
            (Some(v), None) => HeaderSource::Literal(v.clone()),
            (None, Some(s)) => {
                if !r.check_ref(Kind::Secret, s, role) {
                    continue;
                }
                HeaderSource::Secret {
                    secret: s.to_string(),
                    prefix: h.prefix.clone().unwrap_or_default(),
                }
            }
            _ => {
                r.err(
                    Diag::error(format!(
                        "header `{}` needs a value or secret=, not both or neither",
                        &*h.name
                    ))
                    .label(at(&h.span), "this header")
                    .help("header \"Authorization\" secret=\"hook-token\" prefix=\"Bearer \""),
                );
                continue;
            }
        };
        headers.push(AlertHeader {
            name: h.name.to_string(),
            value,
        });
    }
    ok.then(|| AlertSink::Webhook {
        url: url.to_string(),
        headers,
    })
}
