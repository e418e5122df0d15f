//! The reconcile truth table and tree-shape cases.
//!
//! Expected outcomes come from `oracle`, a small statement of the sync rules written
//! independently of `reconcile` (in terms of symbolic versions, not entries), and are checked
//! by applying the plan's actions to the snapshots and comparing the resulting trees.

use std::collections::BTreeMap;

use super::model::{ConflictPolicy, Entry, EntryKind, Mode, RelPath, SideName, Snapshot};
use super::reconcile::{reconcile, Op, Plan, Reason, Resolution};

/// A symbolic version of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Absent,
    /// The base's file content.
    F0,
    A,
    B,
    Dir,
}

const MODES: [Mode; 3] = [Mode::TwoWay, Mode::ToContainer, Mode::ToHost];
const POLICIES: [ConflictPolicy; 4] = [
    ConflictPolicy::Fail,
    ConflictPolicy::PreferHost,
    ConflictPolicy::PreferContainer,
    ConflictPolicy::KeepBoth,
];

fn entry(v: V, mtime: i64) -> Option<Entry> {
    let file = |h: &str| Entry {
        kind: EntryKind::File,
        hash: h.to_string(),
        size: 1,
        mode: 0o644,
        mtime,
    };
    match v {
        V::Absent => None,
        V::F0 => Some(file("f0")),
        V::A => Some(file("a")),
        V::B => Some(file("b")),
        V::Dir => Some(Entry {
            kind: EntryKind::Dir,
            hash: String::new(),
            size: 0,
            mode: 0o755,
            mtime,
        }),
    }
}

fn symbol(e: Option<&Entry>) -> V {
    match e {
        None => V::Absent,
        Some(e) if e.kind == EntryKind::Dir => V::Dir,
        Some(e) => match e.hash.as_str() {
            "f0" => V::F0,
            "a" => V::A,
            "b" => V::B,
            other => panic!("unexpected hash {other}"),
        },
    }
}

/// What the rules say should happen.
#[derive(Debug, PartialEq, Eq)]
struct Expect {
    host: V,
    container: V,
    conflict: bool,
    blocked: bool,
    /// The version saved as a conflict copy, if any.
    copy: Option<V>,
}

fn oracle(base: V, h: V, c: V, mode: Mode, policy: ConflictPolicy, host_newer: bool) -> Expect {
    let agree = |v| Expect {
        host: v,
        container: v,
        conflict: false,
        blocked: false,
        copy: None,
    };
    match mode {
        Mode::ToContainer => return agree(h),
        Mode::ToHost => return agree(c),
        Mode::TwoWay => {}
    }
    if h == base {
        return agree(c);
    }
    if c == base || h == c {
        return agree(h);
    }
    let conflict = |host, container, copy| Expect {
        host,
        container,
        conflict: true,
        blocked: false,
        copy,
    };
    match policy {
        ConflictPolicy::Fail => Expect {
            blocked: true,
            ..conflict(h, c, None)
        },
        ConflictPolicy::PreferHost => conflict(h, h, None),
        ConflictPolicy::PreferContainer => conflict(c, c, None),
        ConflictPolicy::KeepBoth => {
            if h == V::Absent {
                conflict(c, c, None)
            } else if c == V::Absent {
                conflict(h, h, None)
            } else if h == V::Dir {
                conflict(h, h, Some(c))
            } else if c == V::Dir || !host_newer {
                conflict(c, c, Some(h))
            } else {
                conflict(h, h, Some(c))
            }
        }
    }
}

/// Applies a plan to the two snapshots, the way the engine would.
fn simulate(plan: &Plan, host: &mut Snapshot, container: &mut Snapshot) {
    for a in &plan.actions {
        match &a.op {
            Op::Copy { from, entry } => {
                let dst = match from {
                    SideName::Host => &mut *container,
                    SideName::Container => &mut *host,
                };
                dst.insert(a.path.clone(), entry.clone());
            }
            Op::Delete { on, .. } => {
                match on {
                    SideName::Host => host.remove(&a.path),
                    SideName::Container => container.remove(&a.path),
                };
            }
            Op::KeepConflictCopy { entry, to, .. } => {
                host.insert(to.clone(), entry.clone());
                container.insert(to.clone(), entry.clone());
            }
            Op::RecordBase { .. } => {}
            Op::MergeJson => panic!("no json in the truth table"),
        }
    }
}

fn states_for(base: V) -> Vec<V> {
    match base {
        // absent, new (two different contents), new directory
        V::Absent => vec![V::Absent, V::A, V::B, V::Dir],
        // same, changed (two different contents), deleted, type-changed
        V::F0 => vec![V::F0, V::A, V::B, V::Absent, V::Dir],
        // same, deleted, type-changed to file (two contents)
        V::Dir => vec![V::Dir, V::Absent, V::A, V::B],
        _ => unreachable!(),
    }
}

#[test]
fn truth_table() {
    let f = RelPath::new("f").unwrap();
    let mut checked = 0;
    for base in [V::Absent, V::F0, V::Dir] {
        for &h in &states_for(base) {
            for &c in &states_for(base) {
                for mode in MODES {
                    for policy in POLICIES {
                        for host_newer in [true, false] {
                            let (hm, cm) = if host_newer { (200, 100) } else { (100, 200) };
                            let snap = |v, m| -> Snapshot {
                                entry(v, m).map(|e| (f.clone(), e)).into_iter().collect()
                            };
                            let b = snap(base, 1);
                            let (mut hs, mut cs) = (snap(h, hm), snap(c, cm));
                            let plan = reconcile(&b, &hs, &cs, mode, policy, "T");
                            let want = oracle(base, h, c, mode, policy, host_newer);
                            let case = format!(
                                "base={base:?} host={h:?} container={c:?} {mode:?} {policy:?} host_newer={host_newer}\n{plan:#?}"
                            );
                            assert_eq!(!plan.conflicts.is_empty(), want.conflict, "{case}");
                            assert_eq!(plan.is_blocked(), want.blocked, "{case}");
                            if want.blocked {
                                assert!(plan.actions.is_empty(), "{case}");
                            }
                            simulate(&plan, &mut hs, &mut cs);
                            assert_eq!(symbol(hs.get(&f)), want.host, "host: {case}");
                            assert_eq!(symbol(cs.get(&f)), want.container, "container: {case}");
                            let copies = |s: &Snapshot| -> Vec<V> {
                                s.iter()
                                    .filter(|(p, _)| **p != f)
                                    .map(|(_, e)| symbol(Some(e)))
                                    .collect()
                            };
                            let want_copy: Vec<V> = want.copy.into_iter().collect();
                            assert_eq!(copies(&hs), want_copy, "host copies: {case}");
                            assert_eq!(copies(&cs), want_copy, "container copies: {case}");
                            // A path gets an action exactly when a side must change or the
                            // agreed end state differs from the base (which is then recorded).
                            let settled = !want.blocked
                                && (want.host != base || h != want.host || c != want.container);
                            let moves_base = plan.actions.iter().any(|a| a.path == f);
                            assert_eq!(settled, moves_base, "base update: {case}");
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, (16 + 25 + 16) * 3 * 4 * 2);
}

fn file(hash: &str) -> Entry {
    entry(V::A, 1)
        .map(|e| Entry {
            hash: hash.into(),
            ..e
        })
        .unwrap()
}

fn dir() -> Entry {
    entry(V::Dir, 1).unwrap()
}

fn snap(items: &[(&str, Entry)]) -> Snapshot {
    items
        .iter()
        .map(|(p, e)| (RelPath::new(*p).unwrap(), e.clone()))
        .collect()
}

fn reasons(plan: &Plan) -> BTreeMap<String, String> {
    plan.actions
        .iter()
        .map(|a| (a.path.to_string(), a.reason.to_string()))
        .collect()
}

#[test]
fn reasons_name_the_side_and_the_change() {
    let base = snap(&[("a", file("1")), ("b", file("1"))]);
    let host = snap(&[("a", file("2")), ("b", file("1")), ("n", file("1"))]);
    let container = snap(&[("a", file("1"))]);
    let plan = reconcile(
        &base,
        &host,
        &container,
        Mode::TwoWay,
        ConflictPolicy::Fail,
        "T",
    );
    let r = reasons(&plan);
    assert_eq!(r["a"], "changed on host");
    assert_eq!(r["b"], "deleted in container");
    assert_eq!(r["n"], "created on host");
    let both = snap(&[("a", file("3"))]);
    let plan = reconcile(
        &base,
        &host,
        &both,
        Mode::TwoWay,
        ConflictPolicy::PreferHost,
        "T",
    );
    assert_eq!(reasons(&plan)["a"], "conflict: both changed");
}

#[test]
fn actions_print_as_one_line_each() {
    let base = snap(&[("a", file("1")), ("b", file("1"))]);
    let host = snap(&[("a", file("2")), ("b", file("1"))]);
    let container = snap(&[("a", file("1"))]);
    let plan = reconcile(
        &base,
        &host,
        &container,
        Mode::TwoWay,
        ConflictPolicy::Fail,
        "T",
    );
    let lines: Vec<String> = plan.actions.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        lines,
        [
            "a: copy to container (changed on host)",
            "b: delete on host (deleted in container)"
        ]
    );
}

#[test]
fn deleted_directory_is_kept_when_a_child_changed_on_the_other_side() {
    let base = snap(&[("d", dir()), ("d/x", file("1")), ("d/y", file("1"))]);
    let host = snap(&[]);
    let container = snap(&[("d", dir()), ("d/x", file("2")), ("d/y", file("1"))]);
    let plan = reconcile(
        &base,
        &host,
        &container,
        Mode::TwoWay,
        ConflictPolicy::KeepBoth,
        "T",
    );
    let (mut h, mut c) = (host.clone(), container.clone());
    simulate(&plan, &mut h, &mut c);
    // The changed child survives deletion, so its directory is recreated on the host; the
    // unchanged sibling's deletion still propagates.
    let names = |s: &Snapshot| s.keys().map(|p| p.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&h), ["d", "d/x"]);
    assert_eq!(names(&c), ["d", "d/x"]);
    assert_eq!(reasons(&plan)["d"], "kept: entries under it survive");
}

#[test]
fn file_replacing_a_directory_whose_contents_changed_is_a_conflict() {
    let base = snap(&[("d", dir()), ("d/x", file("1"))]);
    let host = snap(&[("d", file("f"))]);
    let container = snap(&[("d", dir()), ("d/x", file("1")), ("d/new", file("n"))]);
    let outcome = |policy| {
        let plan = reconcile(&base, &host, &container, Mode::TwoWay, policy, "T");
        let (mut h, mut c) = (host.clone(), container.clone());
        simulate(&plan, &mut h, &mut c);
        let names = |s: &Snapshot| s.keys().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&h), names(&c), "{policy:?}: {plan:#?}");
        (plan, names(&h))
    };
    let (plan, _) = outcome(ConflictPolicy::Fail);
    assert!(plan.is_blocked());
    assert_eq!(plan.conflicts[0].path.as_str(), "d");
    let (_, tree) = outcome(ConflictPolicy::PreferHost);
    assert_eq!(tree, ["d"]);
    let (_, tree) = outcome(ConflictPolicy::PreferContainer);
    assert_eq!(tree, ["d", "d/new"]);
    let (plan, tree) = outcome(ConflictPolicy::KeepBoth);
    assert_eq!(tree, ["d", "d.conflict-host-T", "d/new"]);
    assert!(matches!(
        plan.conflicts[0].resolution,
        Resolution::KeptBoth {
            side: SideName::Container,
            ..
        }
    ));
}

#[test]
fn json_changed_on_both_sides_is_handed_to_the_merge() {
    let base = snap(&[("c.json", file("1"))]);
    let host = snap(&[("c.json", file("2"))]);
    let container = snap(&[("c.json", file("3"))]);
    let plan = reconcile(
        &base,
        &host,
        &container,
        Mode::TwoWay,
        ConflictPolicy::Fail,
        "T",
    );
    assert!(!plan.is_blocked());
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.actions[0].op, Op::MergeJson);
}

#[test]
fn conflict_copy_names_do_not_collide() {
    let base = snap(&[("a", file("1"))]);
    let host = snap(&[("a", file("2")), ("a.conflict-container-T", file("x"))]);
    let container = snap(&[
        ("a", entry(V::B, 0).unwrap()),
        ("a.conflict-container-T", file("x")),
    ]);
    let plan = reconcile(
        &base,
        &host,
        &container,
        Mode::TwoWay,
        ConflictPolicy::KeepBoth,
        "T",
    );
    let to = plan.actions.iter().find_map(|a| match &a.op {
        Op::KeepConflictCopy { to, .. } => Some(to.to_string()),
        _ => None,
    });
    assert_eq!(to.as_deref(), Some("a.conflict-container-T-2"));
}

#[test]
fn one_way_reverts_other_side_with_reason() {
    let base = snap(&[("a", file("1"))]);
    let host = snap(&[("a", file("1"))]);
    let container = snap(&[("a", file("2")), ("junk", file("j"))]);
    let plan = reconcile(
        &base,
        &host,
        &container,
        Mode::ToContainer,
        ConflictPolicy::Fail,
        "T",
    );
    let r = reasons(&plan);
    assert_eq!(r["a"], "one-way sync reverts the change in container");
    assert!(plan.actions.iter().any(|a| a.path.as_str() == "junk"
        && matches!(
            a.op,
            Op::Delete {
                on: SideName::Container,
                ..
            }
        )));
    assert!(plan.actions.iter().all(|a| a.reason != Reason::Conflict));
}
