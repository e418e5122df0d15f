//! The human form of a sync pass: what moved and why, conflicts and how they were resolved,
//! what was deferred or failed.

use super::reconcile::Resolution;
use super::{BaseStore, Report};

/// The human form of a pass report.
pub fn render(name: &str, r: &Report, store: &BaseStore) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "would " } else { "" };
    if r.plan.actions.is_empty() && r.deferred.is_empty() && r.failed.is_empty() {
        let files = store.load().map(|b| b.entries.len()).unwrap_or(0);
        out.push_str(&format!("sync {name}: up to date ({files} entries)\n"));
        return out;
    }
    if r.dry_run {
        out.push_str(&format!(
            "sync {name} (dry run): {} action(s) would run\n",
            r.plan.actions.len()
        ));
    } else {
        out.push_str(&format!(
            "sync {name}: {} applied, {} deferred, {} failed\n",
            r.applied.len(),
            r.deferred.len(),
            r.failed.len()
        ));
    }
    let shown: &[crate::sync::Action] = if r.dry_run {
        &r.plan.actions
    } else {
        &r.applied
    };
    for a in shown {
        out.push_str(&format!("  {verb}{a}\n"));
    }
    for c in &r.plan.conflicts {
        let what = match &c.resolution {
            Resolution::Unresolved => "unresolved".to_string(),
            Resolution::Kept { side } => format!("kept the {side} version"),
            Resolution::KeptBoth {
                side,
                copy: Some(copy),
            } => format!("kept the {side} version; the other is saved as {copy}"),
            Resolution::KeptBoth { side, copy: None } => format!("kept the {side} version"),
        };
        out.push_str(&format!("  conflict: {}: {what}\n", c.path));
    }
    for s in &r.deferred {
        out.push_str(&format!("  deferred: {}: {}\n", s.action.path, s.why));
    }
    for s in &r.failed {
        out.push_str(&format!("  failed: {}: {}\n", s.action, s.why));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{Action, Entry, EntryKind, Op, Reason, RelPath, SideName};

    #[test]
    fn reports_say_what_moved_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaseStore::at(dir.path().join("b.json"));
        let action = Action {
            path: RelPath::new("settings.json").unwrap(),
            op: Op::Copy {
                from: SideName::Host,
                entry: Entry {
                    kind: EntryKind::File,
                    hash: "h".into(),
                    size: 1,
                    mode: 0o644,
                    mtime: 0,
                },
            },
            reason: Reason::Changed(SideName::Host),
        };
        let mut r = Report {
            dry_run: true,
            ..Report::default()
        };
        r.plan.actions.push(action.clone());
        let text = render("claude", &r, &store);
        assert!(text.contains("(dry run): 1 action(s) would run"), "{text}");
        assert!(
            text.contains("would settings.json: copy to container (changed on host)"),
            "{text}"
        );
        let r = Report::default();
        assert_eq!(
            render("claude", &r, &store),
            "sync claude: up to date (0 entries)\n"
        );
    }
}
