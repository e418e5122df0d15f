//! KDL text → raw nodes: parse, interpolate, decode each top-level node with knuffel, and turn
//! every knuffel error into a [`Diag`] — adding "did you mean …" to unknown names.

use knuffel::ast::SpannedNode;
use knuffel::errors::DecodeError;
use knuffel::span::Span;
use miette::{Diagnostic, SourceSpan};

use super::diagnostic::{did_you_mean, Diag};
use super::interpolate::{interpolate_nodes, Vars};
use super::raw::TopNode;

/// The node kinds that may appear at the top of a manifest.
pub const TOP_LEVEL: &[&str] = &[
    "project", "secret", "image", "volume", "network", "service", "task", "test", "backup", "sync",
    "alert",
];

/// Known child nodes and properties under each node path (`service/health`), for suggestions.
/// `*/depends-on` applies under every kind.
const KNOWN: &[(&str, &[&str], &[&str])] = &[
    ("project", &["description", "state-dir"], &[]),
    (
        "secret",
        &["description", "env", "file", "keychain", "libsecret"],
        &[],
    ),
    ("secret/keychain", &[], &["service", "account"]),
    (
        "image",
        &[
            "description",
            "context",
            "dockerfile",
            "target",
            "reference",
            "arg",
            "depends-on",
        ],
        &[],
    ),
    ("volume", &["description", "driver"], &[]),
    ("network", &["description", "driver", "internal"], &[]),
    (
        "service",
        &[
            "description",
            "image",
            "command",
            "entrypoint",
            "env",
            "secret-env",
            "secret-file",
            "port",
            "mount",
            "bind",
            "network",
            "restart",
            "resources",
            "health",
            "depends-on",
            "user",
            "workdir",
            "hostname",
            "ready-timeout",
            "stop-timeout",
            "label",
            "update",
            "drain-timeout",
            "keep-previous",
            "profile",
            "restart-limit",
        ],
        &[],
    ),
    ("service/restart-limit", &[], &["within"]),
    ("service/port", &[], &["host", "protocol", "ip"]),
    ("service/mount", &[], &["read-only"]),
    ("service/bind", &[], &["read-only"]),
    ("service/network", &[], &["alias"]),
    ("service/resources", &[], &["cpus", "memory", "pids"]),
    (
        "service/health",
        &[
            "cmd",
            "shell",
            "interval",
            "timeout",
            "retries",
            "start-period",
        ],
        &[],
    ),
    ("service/secret-env", &[], &["from"]),
    ("service/secret-file", &[], &["path"]),
    (
        "task",
        &[
            "description",
            "run",
            "inputs",
            "outputs",
            "env",
            "secret-env",
            "depends-on",
            "dir",
            "image",
            "timeout",
        ],
        &[],
    ),
    ("task/secret-env", &[], &["from"]),
    (
        "test",
        &[
            "description",
            "tags",
            "needs",
            "depends-on",
            "run",
            "image",
            "exec",
            "http",
            "tcp",
            "inputs",
            "env",
            "timeout",
        ],
        &[],
    ),
    (
        "test/http",
        &[],
        &[
            "method",
            "status",
            "contains",
            "json-path",
            "equals",
            "body",
            "retries",
            "delay",
        ],
    ),
    ("test/tcp", &[], &["retries", "delay"]),
    (
        "backup",
        &[
            "description",
            "volume",
            "path",
            "quiesce",
            "level",
            "copy",
            "keep",
            "every",
            "max-age",
            "depends-on",
        ],
        &[],
    ),
    ("backup/quiesce", &[], &["pre", "post"]),
    ("backup/copy", &[], &["path", "rclone", "media", "offsite"]),
    (
        "backup/keep",
        &[],
        &["last", "hourly", "daily", "weekly", "monthly", "yearly"],
    ),
    (
        "sync",
        &[
            "description",
            "host",
            "volume",
            "service",
            "mode",
            "ignore",
            "rewrite",
            "conflict",
            "owner",
            "file-mode",
            "quiet-period",
            "on-apply",
            "watch",
        ],
        &[],
    ),
    ("sync/volume", &[], &["path"]),
    ("sync/service", &[], &["path"]),
    (
        "alert",
        &["description", "webhook", "command", "on", "timeout"],
        &[],
    ),
    ("alert/webhook", &["header"], &["url"]),
    ("alert/webhook/header", &[], &["secret", "prefix"]),
    ("*/depends-on", &[], &["condition"]),
];

fn known_for(path: &str) -> (&'static [&'static str], &'static [&'static str]) {
    let wildcard = path.rsplit_once('/').map(|(_, last)| format!("*/{last}"));
    KNOWN
        .iter()
        .find(|(p, _, _)| *p == path || Some(*p) == wildcard.as_deref())
        .map(|(_, c, p)| (*c, *p))
        .unwrap_or((&[], &[]))
}

/// A top-level node's kind and name as written, known even when the node failed to decode,
/// so references to it are not reported as undeclared on top of its own errors.
pub struct Declared {
    pub kind: String,
    pub name: String,
    pub span: SourceSpan,
}

/// What decoding produced: the nodes that decoded cleanly, every declared name, and every
/// diagnostic.
pub struct Decoded {
    pub nodes: Vec<TopNode>,
    pub declared: Vec<Declared>,
    pub diags: Vec<Diag>,
}

/// Parses and decodes a manifest text. A syntax error stops before decoding (nothing after it
/// can be trusted).
pub fn decode(name: &str, text: &str, vars: &Vars) -> Result<Decoded, knuffel::Error> {
    let mut doc = super::parallel_parse::parse_ast(name, text)?;
    let mut diags = Vec::new();
    interpolate_nodes(&mut doc.nodes, vars, text, &mut diags);
    let mut nodes = Vec::new();
    let mut declared = Vec::new();
    for node in &doc.nodes {
        let kind = &**node.node_name;
        if !TOP_LEVEL.contains(&kind) {
            diags.push(
                Diag::error(format!("unknown node `{kind}`"))
                    .label(span_of(node.node_name.span()), "not a sanctuary node")
                    .help_opt(
                        did_you_mean(kind, TOP_LEVEL.iter().copied()).or_else(|| {
                            Some(format!("a manifest declares {}", TOP_LEVEL.join(", ")))
                        }),
                    ),
            );
            continue;
        }
        if let Some(first) = node.arguments.first() {
            if let knuffel::ast::Literal::String(n) = &*first.literal {
                declared.push(Declared {
                    kind: kind.to_string(),
                    name: n.to_string(),
                    span: span_of(first.literal.span()),
                });
            }
        }
        if let Some(n) = decode_recovering(node, kind, &mut diags) {
            nodes.push(n);
        }
    }
    Ok(Decoded {
        nodes,
        declared,
        diags,
    })
}

/// knuffel stops decoding a node at its first error. To report every error in a node, decode
/// again without the child that failed, until the node decodes or nothing more can be removed.
/// A node that had errors is not returned: resolving what is left of it would only add errors
/// that follow from the first ones.
fn decode_recovering(
    node: &SpannedNode<Span>,
    kind: &str,
    diags: &mut Vec<Diag>,
) -> Option<TopNode> {
    let mut current = node.clone();
    let mut failed = false;
    loop {
        match knuffel::decode::node::<TopNode, Span>(&current) {
            Ok(n) => return (!failed).then_some(n),
            Err(errors) => {
                failed = true;
                let mut removed_any = false;
                for e in errors {
                    let span = error_span(&e);
                    diags.push(convert(e, &current, kind));
                    if let Some(span) = span {
                        removed_any |= remove_child_at(&mut current, &span);
                    }
                }
                if !removed_any {
                    return None;
                }
            }
        }
    }
}

fn error_span(e: &DecodeError<Span>) -> Option<Span> {
    match e {
        DecodeError::TypeName { span, .. }
        | DecodeError::ScalarKind { span, .. }
        | DecodeError::Missing { span, .. }
        | DecodeError::Unexpected { span, .. }
        | DecodeError::Conversion { span, .. }
        | DecodeError::Unsupported { span, .. } => Some(span.clone()),
        _ => None,
    }
}

/// Removes the direct child of `node` whose text contains `span`.
fn remove_child_at(node: &mut SpannedNode<Span>, span: &Span) -> bool {
    let Some(children) = node.children.as_mut() else {
        return false;
    };
    let before = children.len();
    children.retain(|c| {
        let s = c.span();
        !(s.0 <= span.0 && span.1 <= s.1)
    });
    children.len() != before
}

fn span_of(s: &Span) -> SourceSpan {
    (s.0, s.1.saturating_sub(s.0)).into()
}

/// Finds the path (`service/health`) of the innermost node whose own text (name, arguments,
/// properties) or child list holds `span`, and whether `span` is one of its children.
fn locate<'a>(
    node: &'a SpannedNode<Span>,
    span: &Span,
    path: &mut Vec<String>,
) -> Option<&'a SpannedNode<Span>> {
    path.push(node.node_name.to_string());
    if let Some(children) = &node.children {
        for child in children.iter() {
            let s = child.span();
            if s.0 <= span.0 && span.1 <= s.1 {
                // knuffel points at a whole unexpected node, or at its name for a repeat.
                if s == span || child.node_name.span() == span {
                    return Some(child);
                }
                return locate(child, span, path);
            }
        }
    }
    None
}

fn convert(e: DecodeError<Span>, top: &SpannedNode<Span>, kind: &str) -> Diag {
    match e {
        DecodeError::Unexpected {
            span,
            kind: what,
            message,
        } => {
            let mut path = Vec::new();
            match what {
                "node" => {
                    let found = locate(top, &span, &mut path);
                    let name = found.map(|n| n.node_name.to_string()).unwrap_or_default();
                    let at = found
                        .map(|n| span_of(n.node_name.span()))
                        .unwrap_or(span_of(&span));
                    let parent = path.join("/");
                    let (children, _) = known_for(&parent);
                    let help = did_you_mean(&name, children.iter().copied()).or_else(|| {
                        (!children.is_empty())
                            .then(|| format!("`{parent}` accepts: {}", children.join(", ")))
                    });
                    if children.contains(&name.as_str()) {
                        Diag::error(format!("`{name}` is given more than once in `{parent}`"))
                            .label(at, "repeated here")
                            .help(format!("`{name}` takes one value; keep one of them"))
                    } else {
                        Diag::error(format!("unknown node `{name}` in `{parent}`"))
                            .label(at, "unknown node")
                            .help_opt(help)
                    }
                }
                "property" => {
                    // The property's own node is the innermost one around it.
                    let mut inner = Vec::new();
                    let _ = locate_containing(top, &span, &mut inner);
                    let parent = inner.join("/");
                    let name = message.split('`').nth(1).unwrap_or_default().to_string();
                    let (_, props) = known_for(&parent);
                    let help = did_you_mean(&name, props.iter().copied()).or_else(|| {
                        Some(if props.is_empty() {
                            format!(
                                "`{}` takes no properties",
                                inner.last().map(String::as_str).unwrap_or(kind)
                            )
                        } else {
                            format!(
                                "`{}` accepts: {}",
                                inner.last().map(String::as_str).unwrap_or(kind),
                                props.join(", ")
                            )
                        })
                    });
                    Diag::error(format!("unknown property `{name}`"))
                        .label(span_of(&span), "unknown property")
                        .help_opt(help)
                }
                _ => Diag::error(message).label(span_of(&span), format!("unexpected {what}")),
            }
        }
        DecodeError::Conversion { span, source } => {
            Diag::error(source.to_string()).label(span_of(&span), "invalid value")
        }
        DecodeError::Missing { span, message } => Diag::error(format!("{message} in `{kind}`"))
            .label(span_of(&span), "required value missing"),
        DecodeError::MissingNode { message } => {
            Diag::error(message).label(span_of(top.node_name.span()), "in this node")
        }
        other => {
            let message = other.to_string();
            let labels: Vec<_> = other.labels().map(|l| l.collect()).unwrap_or_default();
            let mut d = Diag::error(message);
            for l in labels {
                d = d.label(*l.inner(), l.label().unwrap_or("here").to_string());
            }
            if d.labels.is_empty() {
                d = d.label(span_of(top.node_name.span()), "in this node");
            }
            d
        }
    }
}

/// Path of the innermost node whose span contains `span`.
fn locate_containing(node: &SpannedNode<Span>, span: &Span, path: &mut Vec<String>) -> bool {
    let s = node.span();
    if !(s.0 <= span.0 && span.1 <= s.1) {
        return false;
    }
    path.push(node.node_name.to_string());
    if let Some(children) = &node.children {
        for child in children.iter() {
            if locate_containing(child, span, path) {
                return true;
            }
        }
    }
    true
}
