//! `sync` rules: the host side, a volume or service side, mode, ignores, rewrites and the
//! conflict policy.

use super::*;

pub(super) fn resolve_sync(r: &mut Resolver, s: &raw::Sync) -> Option<Sync> {
    let name = s.name.to_string();
    let role = format!("sync `{name}`");
    let depends_on = r.depends_on(&role, &s.depends_on);
    let host = match &s.host {
        Some(h) => Some(r.path(h)),
        None => {
            r.err(
                Diag::error(format!("sync `{name}` has no host side"))
                    .label(at(s.name.span()), "no `host`")
                    .help("add `host \"~/.claude\"`"),
            );
            None
        }
    };
    let target = match (&s.volume, &s.service) {
        (Some(v), None) => {
            let ok = r.check_ref(Kind::Volume, &v.name, &role);
            let path = v
                .path
                .as_ref()
                .map(|p| container_path(r, p))
                .unwrap_or_else(|| "/".into());
            ok.then(|| SyncTarget::Volume {
                name: v.name.to_string(),
                path,
            })
        }
        (None, Some(svc)) => {
            let ok = r.check_ref(Kind::Service, &svc.name, &role);
            let path = match &svc.path {
                Some(p) => container_path(r, p),
                None => {
                    r.err(
                        Diag::error("a sync into a service needs path=")
                            .label(at(&svc.span), "no path")
                            .help("service \"claude\" path=\"/home/node/.claude\""),
                    );
                    String::new()
                }
            };
            ok.then(|| SyncTarget::Service {
                name: svc.name.to_string(),
                path,
            })
        }
        (Some(v), Some(_)) => {
            r.err(
                Diag::error(format!("sync `{name}` names both a volume and a service"))
                    .label(at(&v.span), "volume here")
                    .help("sync with one container side: `volume` or `service`"),
            );
            None
        }
        (None, None) => {
            r.err(
                Diag::error(format!("sync `{name}` has no container side"))
                    .label(at(s.name.span()), "no `volume` or `service`")
                    .help("add `volume \"claude-home\" path=\"/home/node/.claude\"`"),
            );
            None
        }
    };
    // Every rewrite must round-trip: two rules with one source or one target are ambiguous.
    let mut rewrites = Vec::new();
    let mut sources: HashMap<String, SourceSpan> = HashMap::new();
    let mut targets: HashMap<String, SourceSpan> = HashMap::new();
    for rw in &s.rewrites {
        if rw.from.is_empty() || rw.to.is_empty() {
            r.err(
                Diag::error("a rewrite needs a non-empty source and target")
                    .label(at(&rw.span), "empty rewrite"),
            );
            continue;
        }
        for (map, key, side) in [
            (&mut sources, rw.from.to_string(), "source"),
            (&mut targets, rw.to.to_string(), "target"),
        ] {
            if let Some(first) = map.insert(key.clone(), at(&rw.span)) {
                r.err(
                    Diag::error(format!(
                        "two rewrites share the {side} `{key}`, so the rewrite cannot be inverted"
                    ))
                    .label(at(&rw.span), "this rewrite")
                    .label(first, "clashes with this one")
                    .help("each rewrite must map one host prefix to one container prefix"),
                );
            }
        }
        rewrites.push((rw.from.to_string(), rw.to.to_string()));
    }
    let file_mode = s.file_mode.as_ref().and_then(|fm| file_mode(r, fm));
    Some(Sync {
        name,
        span: span(&s.name),
        description: s.description.clone(),
        host: host?,
        target: target?,
        mode: s.mode.unwrap_or(SyncMode::TwoWay),
        ignore: flatten_args(&s.ignore),
        rewrites,
        conflict: s.conflict.unwrap_or(ConflictPolicy::Fail),
        owner: s.owner.clone(),
        file_mode,
        quiet_period: s
            .quiet_period
            .unwrap_or(Duration(std::time::Duration::from_millis(500))),
        on_apply: s.on_apply.unwrap_or(false),
        watch: s.watch.unwrap_or(false),
        depends_on,
    })
}
