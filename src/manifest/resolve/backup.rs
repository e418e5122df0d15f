//! `backup` nodes: a volume or host path, how to quiesce, the copies and the keep policy.

use super::*;

pub(super) fn resolve_backup(r: &mut Resolver, b: &raw::Backup) -> Option<Backup> {
    let name = b.name.to_string();
    let role = format!("backup `{name}`");
    let source = match (&b.volume, &b.path) {
        (Some(v), None) => r
            .check_ref(Kind::Volume, v, &role)
            .then(|| BackupSource::Volume(v.to_string())),
        (None, Some(p)) => Some(BackupSource::Path(r.path(p))),
        (Some(v), Some(_)) => {
            r.err(
                Diag::error(format!("backup `{name}` has both a volume and a path"))
                    .label(at(v.span()), "volume here")
                    .help(
                        "a backup reads exactly one source: `volume \"name\"` or `path \"./dir\"`",
                    ),
            );
            None
        }
        (None, None) => {
            r.err(
                Diag::error(format!("backup `{name}` has no source"))
                    .label(at(b.name.span()), "no `volume` or `path`")
                    .help("add `volume \"name\"` or `path \"./dir\"`"),
            );
            None
        }
    };
    let quiesce = b.quiesce.as_ref().map(|q| {
        let services: Vec<String> = q
            .services
            .iter()
            .filter(|s| r.check_ref(Kind::Service, s, &format!("quiesce of {role}")))
            .map(|s| s.to_string())
            .collect();
        let mode = q.mode.0;
        if mode == QuiesceMode::Exec && (q.pre.is_none() || q.services.len() != 1) {
            r.err(
                Diag::error("quiesce \"exec\" runs a command in one service: it needs one service and `pre=`")
                    .label(at(&q.span), "incomplete exec quiesce")
                    .help("quiesce \"exec\" \"db\" pre=\"pg_dump -f /backup/db.sql\" post=\"rm /backup/db.sql\""),
            );
        }
        if matches!(mode, QuiesceMode::Stop | QuiesceMode::Pause) && q.services.is_empty() {
            r.err(
                Diag::error(format!("quiesce \"{mode}\" needs the services to {mode}"))
                    .label(at(q.mode.span()), "no services named"),
            );
        }
        Quiesce { mode, services, pre: q.pre.clone(), post: q.post.clone() }
    });
    let level = match &b.level {
        Some(l) if !(1..=22).contains(&**l) => {
            r.err(
                Diag::error(format!("invalid zstd level {}", **l))
                    .label(at(l.span()), "expected 1-22"),
            );
            3
        }
        Some(l) => **l,
        None => 3,
    };
    let mut copies = Vec::new();
    let mut seen: HashMap<String, SourceSpan> = HashMap::new();
    for c in &b.copies {
        if let Some(first) = seen.insert(c.name.to_string(), at(c.name.span())) {
            r.err(
                Diag::error(format!("copy `{}` is declared twice in {role}", &*c.name))
                    .label(at(c.name.span()), "declared again here")
                    .label(first, "first declared here"),
            );
        }
        let target = match (&c.path, &c.rclone) {
            (Some(p), None) => Some(CopyTarget::Dir(r.path(p))),
            (None, Some(remote)) => {
                if !remote.contains(':') {
                    r.err(
                        Diag::error(format!("invalid rclone remote `{}`", &**remote))
                            .label(at(remote.span()), "expected REMOTE:PATH")
                            .help("rclone=\"offsite:voidcat\""),
                    );
                }
                Some(CopyTarget::Rclone(remote.to_string()))
            }
            _ => {
                r.err(
                    Diag::error(format!(
                        "copy `{}` needs exactly one of path= or rclone=",
                        &*c.name
                    ))
                    .label(at(&c.span), "where does this copy go?"),
                );
                None
            }
        };
        if let Some(target) = target {
            let media = c.media.unwrap_or(match target {
                CopyTarget::Rclone(_) => Media::Cloud,
                CopyTarget::Dir(_) => Media::Disk,
            });
            copies.push(BackupCopy {
                name: c.name.to_string(),
                target,
                media,
                offsite: c.offsite,
            });
        }
    }
    if copies.is_empty() && b.copies.is_empty() {
        copies.push(BackupCopy {
            name: "local".into(),
            target: CopyTarget::Dir(r.state_dir.join("backups").join(&name)),
            media: Media::Disk,
            offsite: false,
        });
    }
    let keep = b
        .keep
        .as_ref()
        .map(|k| Keep {
            last: k.last,
            hourly: k.hourly,
            daily: k.daily,
            weekly: k.weekly,
            monthly: k.monthly,
            yearly: k.yearly,
        })
        .unwrap_or_default();
    let depends_on = r.depends_on(&format!("backup `{}`", &*b.name), &b.depends_on);
    Some(Backup {
        name,
        span: span(&b.name),
        description: b.description.clone(),
        source: source?,
        quiesce,
        level,
        copies,
        keep,
        schedule: b.every.as_ref().and_then(|e| match e.parse::<Schedule>() {
            Ok(s) => Some(s),
            Err(why) => {
                r.err(Diag::error(why).label(at(e.span()), "not a schedule"));
                None
            }
        }),
        max_age: b.max_age,
        depends_on,
    })
}
