//! `${VAR}` and `${VAR:-default}` in string values, from the environment and from a `.env`
//! file beside the manifest (the environment wins, as in Docker Compose). `$$` is a literal `$`.
//!
//! Interpolation runs on the parsed KDL document, before decoding, so every diagnostic still
//! points at the original text.

use std::collections::HashMap;

use knuffel::ast::{Literal, SpannedNode, Value};
use knuffel::span::Span;
use miette::SourceSpan;

use super::diagnostic::Diag;

/// Where variable values come from.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    env: HashMap<String, String>,
    dotenv: HashMap<String, String>,
}

impl Vars {
    pub fn new(env: HashMap<String, String>, dotenv: HashMap<String, String>) -> Self {
        Vars { env, dotenv }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .or_else(|| self.dotenv.get(name))
            .map(String::as_str)
    }
}

/// Interpolates every string argument and property value in the document, recursively.
pub fn interpolate_nodes(
    nodes: &mut [SpannedNode<Span>],
    vars: &Vars,
    source: &str,
    diags: &mut Vec<Diag>,
) {
    for node in nodes.iter_mut() {
        for value in node.arguments.iter_mut() {
            interpolate_value(value, vars, source, diags);
        }
        for value in node.properties.values_mut() {
            interpolate_value(value, vars, source, diags);
        }
        if let Some(children) = node.children.as_mut() {
            interpolate_nodes(children, vars, source, diags);
        }
    }
}

fn interpolate_value(value: &mut Value<Span>, vars: &Vars, source: &str, diags: &mut Vec<Diag>) {
    let span = value.literal.span().clone();
    if let Literal::String(s) = &*value.literal {
        if !s.contains('$') {
            return;
        }
        // When the literal is written without escapes, offsets inside it map 1:1 onto the
        // text, and a diagnostic can point at the `${VAR}` itself rather than the whole string.
        let raw = source.get(span.0..span.1).unwrap_or("");
        let inner_offset = if raw.len() == s.len() + 2 && raw[1..raw.len() - 1] == **s {
            Some(span.0 + 1)
        } else {
            None
        };
        match expand(s, vars) {
            Ok(out) => *value.literal = Literal::String(out.into()),
            Err(errors) => {
                for e in errors {
                    let at: SourceSpan = match inner_offset {
                        Some(base) => (base + e.start, e.len).into(),
                        None => (span.0, span.1 - span.0).into(),
                    };
                    diags.push(
                        Diag::error(e.message)
                            .label(at, "used here")
                            .help_opt(e.help),
                    );
                }
            }
        }
    }
}

/// An interpolation problem, located by byte offset inside the string.
#[derive(Debug, PartialEq)]
pub struct ExpandError {
    pub start: usize,
    pub len: usize,
    pub message: String,
    pub help: Option<String>,
}

/// Expands `${VAR}`, `${VAR:-default}` and `$$` in `s`; collects every error.
pub fn expand(s: &str, vars: &Vars) -> Result<String, Vec<ExpandError>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') {
            out.push('$');
            i += 2;
        } else if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            let Some(close) = s[i..].find('}') else {
                errors.push(ExpandError {
                    start: i,
                    len: s.len() - i,
                    message: "unterminated `${`: expected `}`".into(),
                    help: Some("write `$${` for a literal `${`".into()),
                });
                break;
            };
            let inner = &s[i + 2..i + close];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                errors.push(ExpandError {
                    start: i,
                    len: close + 1,
                    message: format!("invalid variable name `{name}`"),
                    help: Some("variable names are letters, digits and `_`; write `${VAR:-default}` for a default".into()),
                });
            } else {
                match (vars.get(name), default) {
                    (Some(v), _) => out.push_str(v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => errors.push(ExpandError {
                        start: i,
                        len: close + 1,
                        message: format!("environment variable `{name}` is not set"),
                        help: Some(format!(
                            "set {name} in the environment or in a .env file beside the manifest, or give a default: `${{{name}:-value}}`"
                        )),
                    }),
                }
            }
            i += close + 1;
        } else {
            let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let env = HashMap::from([("USER".to_string(), "alice".to_string())]);
        let dotenv = HashMap::from([
            ("USER".to_string(), "bob".to_string()),
            ("PORT".to_string(), "3000".to_string()),
        ]);
        Vars::new(env, dotenv)
    }

    #[test]
    fn expands_env_dotenv_and_defaults() {
        let v = vars();
        assert_eq!(expand("/Users/${USER}/", &v).unwrap(), "/Users/alice/");
        assert_eq!(expand("${PORT}", &v).unwrap(), "3000");
        assert_eq!(expand("${NOPE:-x y}", &v).unwrap(), "x y");
        assert_eq!(expand("cost $$5 ${NOPE:-}", &v).unwrap(), "cost $5 ");
        assert_eq!(expand("plain $HOME", &v).unwrap(), "plain $HOME");
    }

    #[test]
    fn unset_variable_is_located() {
        let err = expand("a ${MISSING} b", &vars()).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!((err[0].start, err[0].len), (2, 10));
        assert!(err[0].message.contains("MISSING"));
    }

    #[test]
    fn malformed_references() {
        assert!(expand("${", &vars()).is_err());
        assert!(expand("${1X}", &vars()).is_err());
        assert!(expand("${A-B}", &vars()).is_err());
    }
}
