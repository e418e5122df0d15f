//! Three-way merge of JSON documents by key, for `.json` files changed on both sides.
//!
//! Objects merge recursively key by key: a key changed (or added, or removed) on one side only
//! takes that side's value; a key changed identically on both sides is fine; a key changed
//! differently on both sides is a conflict, reported by its JSON pointer, and the whole
//! document is then left to the conflict policy. Arrays and scalars are atomic values.

use serde_json::{Map, Value};

/// Merges `host` and `container` against their common `base`. On success the merged
/// document; otherwise the JSON pointers (`/mcpServers/x/command`) of every conflicting value.
pub fn merge3(base: &Value, host: &Value, container: &Value) -> Result<Value, Vec<String>> {
    let mut conflicts = Vec::new();
    let merged = merge_value(Some(base), Some(host), Some(container), "", &mut conflicts);
    if conflicts.is_empty() {
        // The root is present on both sides, so the merge of it is too.
        Ok(merged.unwrap_or(Value::Null))
    } else {
        Err(conflicts)
    }
}

fn merge_value(
    base: Option<&Value>,
    host: Option<&Value>,
    container: Option<&Value>,
    pointer: &str,
    conflicts: &mut Vec<String>,
) -> Option<Value> {
    if host == container {
        return host.cloned();
    }
    if host == base {
        return container.cloned();
    }
    if container == base {
        return host.cloned();
    }
    match (host, container) {
        (Some(Value::Object(h)), Some(Value::Object(c))) => {
            // A key absent from the base (or a base that was not an object) merges against an
            // empty object: additions of different keys on both sides still combine.
            let empty = Map::new();
            let b = match base {
                Some(Value::Object(b)) => b,
                _ => &empty,
            };
            let mut out = Map::new();
            let keys = h.keys().chain(c.keys().filter(|k| !h.contains_key(*k)));
            for key in keys {
                let child = format!("{pointer}/{}", escape_pointer(key));
                if let Some(v) = merge_value(b.get(key), h.get(key), c.get(key), &child, conflicts)
                {
                    out.insert(key.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        _ => {
            conflicts.push(if pointer.is_empty() {
                "/".to_string()
            } else {
                pointer.to_string()
            });
            host.cloned()
        }
    }
}

/// RFC 6901 escaping of one pointer segment.
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn different_keys_changed_on_each_side_merge() {
        let base = json!({"theme": "dark", "mcpServers": {"a": {"command": "x"}}});
        let host = json!({"theme": "light", "mcpServers": {"a": {"command": "x"}}});
        let container =
            json!({"theme": "dark", "mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}}});
        let merged = merge3(&base, &host, &container).unwrap();
        assert_eq!(
            merged,
            json!({"theme": "light", "mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}}})
        );
    }

    #[test]
    fn deletion_on_one_side_merges_with_change_elsewhere() {
        let base = json!({"a": 1, "b": 2});
        let host = json!({"b": 2});
        let container = json!({"a": 1, "b": 3});
        assert_eq!(merge3(&base, &host, &container).unwrap(), json!({"b": 3}));
    }

    #[test]
    fn same_key_changed_identically_is_not_a_conflict() {
        let base = json!({"a": 1});
        let both = json!({"a": 2});
        assert_eq!(merge3(&base, &both, &both).unwrap(), both);
    }

    #[test]
    fn same_key_changed_differently_is_a_conflict_with_its_pointer() {
        let base = json!({"s": {"a/b": 1, "k": 0}});
        let host = json!({"s": {"a/b": 2, "k": 1}});
        let container = json!({"s": {"a/b": 3, "k": 0}});
        assert_eq!(
            merge3(&base, &host, &container).unwrap_err(),
            vec!["/s/a~1b".to_string()]
        );
    }

    #[test]
    fn changed_versus_deleted_key_is_a_conflict() {
        let base = json!({"a": 1});
        let host = json!({});
        let container = json!({"a": 2});
        assert_eq!(merge3(&base, &host, &container).unwrap_err(), vec!["/a"]);
    }

    #[test]
    fn arrays_are_atomic_and_root_type_clash_conflicts() {
        let base = json!({"l": [1]});
        let host = json!({"l": [1, 2]});
        let container = json!({"l": [0, 1]});
        assert_eq!(merge3(&base, &host, &container).unwrap_err(), vec!["/l"]);
        assert_eq!(
            merge3(&json!({}), &json!([1]), &json!("x")).unwrap_err(),
            vec!["/"]
        );
    }

    #[test]
    fn keys_added_on_both_sides_merge_when_the_base_lacks_them() {
        let base = json!({});
        let host = json!({"n": {"h": 1}});
        let container = json!({"n": {"c": 2}});
        assert_eq!(
            merge3(&base, &host, &container).unwrap(),
            json!({"n": {"h": 1, "c": 2}})
        );
    }
}
