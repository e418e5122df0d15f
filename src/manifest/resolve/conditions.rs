//! Dependency conditions, checked once every node is known: `healthy` needs a service with
//! a health check; other nodes have no health.

use super::*;

pub(super) fn check(r: &mut Resolver, m: &Manifest) {
    // Conditions: `healthy` needs a health check; `completed` and `healthy` make no sense on
    // nodes that are not services (a task always completes; it has no health).
    let located = std::mem::take(&mut r.located);
    for (owner, deps) in &located {
        for (dep, cond_at) in deps {
            match (dep.condition, dep.node.kind) {
                (Condition::Healthy, Kind::Service) => {
                    if let Some(target) = m.services.get(&dep.node.name) {
                        if target.health.is_none() {
                            r.err(
                                Diag::error(format!(
                                    "{owner} waits for `{}` to be healthy, but `{}` has no health check",
                                    dep.node.name, dep.node.name
                                ))
                                .label(*cond_at, "condition=\"healthy\"")
                                .label(target.span, "declared without `health`")
                                .help(format!("add a `health {{ cmd … }}` block to service `{}`, or use condition=\"started\"", dep.node.name)),
                            );
                        }
                    }
                }
                (Condition::Healthy, kind) => r.err(
                    Diag::error(format!(
                        "condition=\"healthy\" applies to services, not to {kind} `{}`",
                        dep.node.name
                    ))
                    .label(*cond_at, "only services have health")
                    .help("drop the condition; other nodes are waited for until they finish"),
                ),
                _ => {}
            }
        }
    }
}
