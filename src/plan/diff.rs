//! Reasons for a change: a field-by-field comparison of two public specs, in words a user
//! reads in a plan ("env CLONE_PORT: \"3000\" → \"3001\"").

use serde_json::Value;

/// Lists what differs between `old` and `new`. Maps (env, labels) are compared key by key;
/// other fields as a whole.
pub fn reasons(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let (Value::Object(o), Value::Object(n)) = (old, new) else {
        if old != new {
            out.push("configuration changed".to_string());
        }
        return out;
    };
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let a = o.get(key).unwrap_or(&Value::Null);
        let b = n.get(key).unwrap_or(&Value::Null);
        if a == b {
            continue;
        }
        match (a, b) {
            (Value::Object(am), Value::Object(bm)) if matches!(key.as_str(), "env" | "labels") => {
                let mut inner: Vec<&String> = am.keys().chain(bm.keys()).collect();
                inner.sort();
                inner.dedup();
                for k in inner {
                    match (am.get(k), bm.get(k)) {
                        (Some(x), Some(y)) if x != y => {
                            out.push(format!("{key} {k}: {} → {}", short(x), short(y)))
                        }
                        (None, Some(y)) => out.push(format!("{key} {k} added: {}", short(y))),
                        (Some(_), None) => out.push(format!("{key} {k} removed")),
                        _ => {}
                    }
                }
            }
            _ => out.push(format!("{key}: {} → {}", short(a), short(b))),
        }
    }
    out
}

/// A compact, bounded rendering of a JSON value for one plan line.
fn short(v: &Value) -> String {
    let s = match v {
        Value::Null => "none".to_string(),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_changed_env_key_and_field() {
        let old = json!({"image": "a:1", "env": {"A": "1", "B": "2"}, "cpus": 0.5});
        let new = json!({"image": "a:2", "env": {"A": "1", "B": "3", "C": "x"}, "cpus": 0.5});
        let r = reasons(&old, &new);
        assert_eq!(
            r,
            vec![
                "env B: \"2\" → \"3\"".to_string(),
                "env C added: \"x\"".to_string(),
                "image: \"a:1\" → \"a:2\"".to_string(),
            ]
        );
        assert!(reasons(&old, &old).is_empty());
    }
}
