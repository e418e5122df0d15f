//! The cache key: every input of a node's result, as one printable, serialisable struct.
//!
//! [`Key::fingerprint`] is sha256 over the key's canonical JSON (object keys sorted at every
//! level, no whitespace), so it does not depend on field or map order nor on serde_json's
//! feature flags. Keeping the key itself (in the cache metadata and the node's last-success
//! record) lets [`Key::diff`] say exactly what changed: "input src/a.rs changed".
//! Secrets appear only as keyed hashes (see [`super::Salt`]); a diff names the secret,
//! never a value.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped whenever the meaning of a key changes, so old cache entries stop matching.
pub const SCHEMA_VERSION: u32 = 1;

/// The resolved spec of a node: what it runs and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The command as its arguments (one element for a shell line).
    pub command: Vec<String>,
    /// Environment variables given to the command (secret values are never here).
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the manifest directory.
    pub workdir: Option<String>,
    /// Declared outputs, as written.
    pub outputs: Vec<String>,
    /// Any other spec fields that affect the result (image, mounts, probes...).
    pub extra: serde_json::Value,
}

/// Everything a node's result depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub schema: u32,
    /// Node kind (`task`, `test`, `image`...).
    pub kind: String,
    pub name: String,
    pub spec: Spec,
    /// Input file name → sha256 hex.
    pub inputs: BTreeMap<String, String>,
    /// Dependency name → its fingerprint.
    pub dependencies: BTreeMap<String, String>,
    /// Secret name → keyed hash of its value.
    pub secrets: BTreeMap<String, String>,
}

/// One human-readable difference between two keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Schema,
    Node {
        old: String,
        new: String,
    },
    Command {
        old: String,
        new: String,
    },
    /// An environment variable; `values` holds old → new when both exist.
    Env {
        name: String,
        what: Edit,
        values: Option<(String, String)>,
    },
    Workdir {
        old: String,
        new: String,
    },
    Outputs {
        old: String,
        new: String,
    },
    /// A field of the spec's `extra`, with short renderings of its old and new value.
    Spec {
        field: String,
        old: String,
        new: String,
    },
    Input {
        path: String,
        what: Edit,
    },
    Dependency {
        name: String,
        what: Edit,
    },
    Secret {
        name: String,
        what: Edit,
    },
}

/// How a named member of a key changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Added,
    Removed,
    Changed,
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Edit::Added => "added",
            Edit::Removed => "removed",
            Edit::Changed => "changed",
        })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Schema => write!(f, "schema changed"),
            Change::Node { old, new } => write!(f, "node changed: {old} → {new}"),
            Change::Command { old, new } => write!(f, "command changed: '{old}' → '{new}'"),
            Change::Env {
                name,
                what,
                values: Some((old, new)),
            } => write!(f, "env {name} {what}: {} → {}", quoted(old), quoted(new)),
            Change::Env { name, what, .. } => write!(f, "env {name} {what}"),
            Change::Workdir { old, new } => {
                write!(f, "working directory changed: '{old}' → '{new}'")
            }
            Change::Outputs { old, new } => write!(f, "outputs changed: [{old}] → [{new}]"),
            Change::Spec { field, old, new } if old.is_empty() && new.is_empty() => {
                write!(f, "{field} changed")
            }
            Change::Spec { field, old, new } => write!(f, "{field} changed: {old} → {new}"),
            Change::Input { path, what } => write!(f, "input {path} {what}"),
            Change::Dependency { name, what } => write!(f, "dependency {name} {what}"),
            Change::Secret { name, what } => write!(f, "secret {name} {what}"),
        }
    }
}

impl Key {
    /// A key for `kind`/`name` with the current schema and nothing else yet.
    pub fn new(kind: impl Into<String>, name: impl Into<String>, spec: Spec) -> Key {
        Key {
            schema: SCHEMA_VERSION,
            kind: kind.into(),
            name: name.into(),
            spec,
            inputs: BTreeMap::new(),
            dependencies: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }

    /// The canonical serialisation the fingerprint is computed over.
    pub fn canonical_json(&self) -> String {
        // The string maps (10,000 inputs for a large task) are written straight out: a
        // BTreeMap of Strings is already in the canonical key order, and going through a
        // `serde_json::Value` costs several allocations per entry. Fields are in key order.
        let mut out = String::with_capacity(128 + self.inputs.len() * 120);
        out.push_str("{\"dependencies\":");
        write_string_map(&self.dependencies, &mut out);
        out.push_str(",\"inputs\":");
        write_string_map(&self.inputs, &mut out);
        out.push_str(",\"kind\":");
        write_json_string(&self.kind, &mut out);
        out.push_str(",\"name\":");
        write_json_string(&self.name, &mut out);
        out.push_str(&format!(",\"schema\":{}", self.schema));
        out.push_str(",\"secrets\":");
        write_string_map(&self.secrets, &mut out);
        out.push_str(",\"spec\":");
        // Serialising plain strings and maps cannot fail; the fallback keeps this total.
        let spec = serde_json::to_value(&self.spec).unwrap_or(serde_json::Value::Null);
        write_canonical(&spec, &mut out);
        out.push('}');
        out
    }

    /// sha256 hex of [`Key::canonical_json`].
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// What changed from `old` to `new`, most fundamental first; empty when they are equal.
    pub fn diff(old: &Key, new: &Key) -> Vec<Change> {
        let mut changes = Vec::new();
        if old.schema != new.schema {
            // Everything else may mean something different now; listing it would mislead.
            return vec![Change::Schema];
        }
        if old.kind != new.kind || old.name != new.name {
            changes.push(Change::Node {
                old: format!("{} {}", old.kind, old.name),
                new: format!("{} {}", new.kind, new.name),
            });
        }
        let (o, n) = (&old.spec, &new.spec);
        if o.command != n.command {
            changes.push(Change::Command {
                old: o.command.join(" "),
                new: n.command.join(" "),
            });
        }
        map_diff(&o.env, &n.env, &mut changes, |name, what| {
            let values = match (o.env.get(&name), n.env.get(&name)) {
                (Some(a), Some(b)) => Some((a.clone(), b.clone())),
                _ => None,
            };
            Change::Env { name, what, values }
        });
        if o.workdir != n.workdir {
            changes.push(Change::Workdir {
                old: o.workdir.clone().unwrap_or_default(),
                new: n.workdir.clone().unwrap_or_default(),
            });
        }
        if o.outputs != n.outputs {
            changes.push(Change::Outputs {
                old: o.outputs.join(", "),
                new: n.outputs.join(", "),
            });
        }
        extra_diff(&o.extra, &n.extra, &mut changes);
        map_diff(&old.inputs, &new.inputs, &mut changes, |path, what| {
            Change::Input { path, what }
        });
        map_diff(
            &old.dependencies,
            &new.dependencies,
            &mut changes,
            |name, what| Change::Dependency { name, what },
        );
        map_diff(&old.secrets, &new.secrets, &mut changes, |name, what| {
            Change::Secret { name, what }
        });
        changes
    }
}

fn map_diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    changes: &mut Vec<Change>,
    make: impl Fn(String, Edit) -> Change,
) {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let what = match (old.get(name), new.get(name)) {
            (None, Some(_)) => Edit::Added,
            (Some(_), None) => Edit::Removed,
            (Some(a), Some(b)) if a != b => Edit::Changed,
            _ => continue,
        };
        changes.push(make(name.clone(), what));
    }
}

/// Names the top-level fields of `extra` that differ ("image changed"); a non-object
/// `extra` is reported as a whole.
fn extra_diff(old: &serde_json::Value, new: &serde_json::Value, changes: &mut Vec<Change>) {
    use serde_json::Value;
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut fields: Vec<&String> = a.keys().chain(b.keys()).collect();
            fields.sort();
            fields.dedup();
            for field in fields {
                let (x, y) = (a.get(field), b.get(field));
                if x != y {
                    changes.push(Change::Spec {
                        field: field.clone(),
                        old: short(x),
                        new: short(y),
                    });
                }
            }
        }
        _ => changes.push(Change::Spec {
            field: "spec".into(),
            old: String::new(),
            new: String::new(),
        }),
    }
}

/// A compact, bounded rendering of a JSON value for one line of a plan or `why`.
fn short(v: Option<&serde_json::Value>) -> String {
    let s = match v {
        None | Some(serde_json::Value::Null) => "none".to_string(),
        Some(other) => other.to_string(),
    };
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::new();
    write_json_string(s, &mut out);
    if out.chars().count() > 60 {
        let cut: String = out.chars().take(57).collect();
        format!("{cut}...")
    } else {
        out
    }
}

/// A JSON string literal, escaped as serde_json escapes it.
fn write_json_string(text: &str, out: &mut String) {
    let mut buf = Vec::with_capacity(text.len() + 2);
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut buf, text);
    out.push_str(&String::from_utf8_lossy(&buf));
}

/// A map of strings as a canonical JSON object (a BTreeMap iterates in key order).
fn write_string_map(map: &BTreeMap<String, String>, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(k, out);
        out.push(':');
        write_json_string(v, out);
    }
    out.push('}');
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Salt;

    fn base() -> Key {
        let mut key = Key::new(
            "task",
            "build",
            Spec {
                command: vec!["cc -o app main.c".into()],
                env: [("FOO".into(), "1".into())].into(),
                workdir: None,
                outputs: vec!["app".into()],
                extra: serde_json::json!({"image": "clone", "shell": "sh"}),
            },
        );
        key.inputs.insert("src/a.rs".into(), "aa".into());
        key.inputs.insert("src/b.rs".into(), "bb".into());
        key.dependencies.insert("fetch".into(), "f1".into());
        key.secrets.insert(
            "TOKEN".into(),
            Salt::from_bytes([7; 32]).keyed_hash(b"s3cret"),
        );
        key
    }

    fn messages(old: &Key, new: &Key) -> Vec<String> {
        Key::diff(old, new).iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn canonical_json_is_the_sorted_compact_form_of_the_whole_key() {
        let mut key = base();
        key.inputs
            .insert("src/\"quoted\" ü\u{1}.rs".into(), "ab".into());
        key.inputs.insert("A-first".into(), "cd".into());
        key.secrets.insert("tab\there".into(), "ef".into());
        key.dependencies.insert("task dep".into(), "01".into());
        let value = serde_json::to_value(&key).unwrap();
        let mut generic = String::new();
        write_canonical(&value, &mut generic);
        assert_eq!(key.canonical_json(), generic);
    }

    #[test]
    fn fingerprint_is_stable_and_order_independent() {
        let a = base();
        let mut b = base();
        b.spec.extra = serde_json::json!({"shell": "sh", "image": "clone"});
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        assert!(Key::diff(&a, &b).is_empty());
    }

    #[test]
    fn every_part_of_the_key_moves_the_fingerprint() {
        let a = base();
        let edits: Vec<fn(&mut Key)> = vec![
            |k| k.schema += 1,
            |k| k.name = "other".into(),
            |k| k.spec.command = vec!["make".into()],
            |k| {
                k.spec.env.insert("BAR".into(), "2".into());
            },
            |k| k.spec.workdir = Some("sub".into()),
            |k| k.spec.outputs.push("lib".into()),
            |k| k.spec.extra = serde_json::json!({"image": "other", "shell": "sh"}),
            |k| {
                k.inputs.insert("src/a.rs".into(), "changed".into());
            },
            |k| {
                k.dependencies.insert("fetch".into(), "f2".into());
            },
            |k| {
                k.secrets.insert("TOKEN".into(), "other".into());
            },
        ];
        for edit in edits {
            let mut b = base();
            edit(&mut b);
            assert_ne!(a.fingerprint(), b.fingerprint(), "{b:?}");
            assert!(!Key::diff(&a, &b).is_empty(), "{b:?}");
        }
    }

    #[test]
    fn diff_names_each_change_specifically() {
        let old = base();
        let mut new = base();
        new.spec.command = vec!["cc -O2 -o app main.c".into()];
        new.spec.env.insert("FOO".into(), "2".into());
        new.spec.env.insert("NEW".into(), "x".into());
        new.spec.extra["image"] = "other".into();
        new.inputs.insert("src/a.rs".into(), "a2".into());
        new.inputs.remove("src/b.rs");
        new.inputs.insert("src/c.rs".into(), "cc".into());
        new.dependencies.insert("fetch".into(), "f2".into());
        new.secrets
            .insert("TOKEN".into(), Salt::from_bytes([7; 32]).keyed_hash(b"n3w"));
        assert_eq!(
            messages(&old, &new),
            [
                "command changed: 'cc -o app main.c' → 'cc -O2 -o app main.c'",
                r#"env FOO changed: "1" → "2""#,
                "env NEW added",
                r#"image changed: "clone" → "other""#,
                "input src/a.rs changed",
                "input src/b.rs removed",
                "input src/c.rs added",
                "dependency fetch changed",
                "secret TOKEN changed",
            ]
        );
    }

    #[test]
    fn schema_change_is_reported_alone() {
        let old = base();
        let mut new = base();
        new.schema += 1;
        new.inputs.clear();
        assert_eq!(messages(&old, &new), ["schema changed"]);
    }

    #[test]
    fn secrets_never_appear_in_key_or_diff() {
        let old = base();
        let mut new = base();
        new.secrets.insert(
            "TOKEN".into(),
            Salt::from_bytes([7; 32]).keyed_hash(b"t0ps3cret"),
        );
        let text = format!(
            "{}{:?}{:?}",
            new.canonical_json(),
            messages(&old, &new),
            new
        );
        assert!(!text.contains("s3cret") && !text.contains("t0ps3cret"));
    }

    #[test]
    fn key_round_trips_through_json() {
        let key = base();
        let back: Key = serde_json::from_str(&key.canonical_json()).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.fingerprint(), key.fingerprint());
    }
}
