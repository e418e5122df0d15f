//! The decision table, case by case, on containers as the backend reports them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::*;
use crate::fingerprint::Salt;
use crate::manifest::{self, interpolate::Vars, Manifest};
use crate::plan::desired;

fn manifest(text: &str) -> Manifest {
    let vars = Vars::new(HashMap::new(), HashMap::new());
    manifest::load_str(
        "Sanctuary.kdl",
        text,
        Path::new("/p/Sanctuary.kdl"),
        Path::new("/p"),
        &vars,
    )
    .expect("valid manifest")
    .manifest
}

const WEB: &str = r#"project "demo"
service "web" {
    image "busybox:1"
    env MODE="prod"
}
"#;

fn want(text: &str) -> desired::DesiredContainer {
    let m = manifest(text);
    desired::container(
        &m,
        &m.services["web"],
        "busybox:1",
        None,
        &Salt::from_bytes([7; 32]),
    )
    .unwrap()
}

/// The container the backend would report for `d`, running.
fn seen(d: &desired::DesiredContainer) -> ContainerInfo {
    ContainerInfo {
        id: "c1".into(),
        name: d.spec.name.clone(),
        state: ContainerState::Running,
        health: crate::backend::HealthState::None,
        exit_code: None,
        started_at: None,
        labels: d.spec.labels.clone(),
        image: d.spec.image.clone(),
        image_id: String::new(),
        ports: Vec::new(),
        health_output: Vec::new(),
        env: d.spec.env.clone(),
        ips: Default::default(),
    }
}

fn record(fp: &str, result: RecordResult) -> NodeRecord {
    NodeRecord {
        kind: "service".into(),
        name: "web".into(),
        fingerprint: fp.into(),
        spec: serde_json::Value::Null,
        finished_at: chrono::Utc::now(),
        result,
    }
}

fn service(
    d: &desired::DesiredContainer,
    c: Option<&ContainerInfo>,
    r: Option<&NodeRecord>,
    last: Option<&Key>,
) -> Decision {
    decide(Case::Service {
        desired: d,
        observed: c,
        record: r,
        last: Last {
            fingerprint: last.map(|k| k.fingerprint()),
            load: Box::new(move || last.cloned()),
        },
    })
}

#[test]
fn a_matching_running_container_is_up_to_date() {
    let d = want(WEB);
    let c = seen(&d);
    let r = record(&d.fingerprint, RecordResult::Ran);
    assert_eq!(
        service(&d, Some(&c), Some(&r), Some(&d.key)).action,
        Action::UpToDate
    );
}

#[test]
fn a_missing_container_is_created_and_says_it_went_missing() {
    let d = want(WEB);
    let fresh = service(&d, None, None, None);
    assert_eq!(fresh, Decision::new(Action::Create, vec![]));
    let r = record(&d.fingerprint, RecordResult::Ran);
    let gone = service(&d, None, Some(&r), Some(&d.key));
    assert_eq!(gone.action, Action::Create);
    assert!(
        gone.reasons[0].contains("removed outside sanctuary"),
        "{gone:?}"
    );
}

#[test]
fn a_stopped_or_paused_container_is_started() {
    let d = want(WEB);
    let mut c = seen(&d);
    c.state = ContainerState::Exited;
    let r = record(&d.fingerprint, RecordResult::Ran);
    let dec = service(&d, Some(&c), Some(&r), None);
    assert_eq!(dec.action, Action::Start);
    assert_eq!(dec.reasons, vec!["exists, stopped".to_string()]);
    c.state = ContainerState::Paused;
    assert_eq!(
        service(&d, Some(&c), Some(&r), None).reasons,
        vec!["exists, paused".to_string()]
    );
}

#[test]
fn a_changed_manifest_replaces_and_names_the_change() {
    let old = want(WEB);
    let new = want(&WEB.replace("prod", "debug"));
    let c = seen(&old);
    let dec = service(&new, Some(&c), None, Some(&old.key));
    assert_eq!(dec.action, Action::Replace);
    assert_eq!(
        dec.reasons,
        vec![r#"env MODE changed: "prod" → "debug""#.to_string()]
    );
    // Without the old key there is still a reason.
    assert_eq!(
        service(&new, Some(&c), None, None).reasons,
        vec!["configuration changed".to_string()]
    );
}

#[test]
fn a_container_recreated_by_hand_with_copied_labels_is_replaced() {
    let d = want(WEB);
    let mut c = seen(&d);
    c.env.insert("MODE".into(), "hacked".into());
    let dec = service(&d, Some(&c), None, Some(&d.key));
    assert_eq!(dec.action, Action::Replace);
    assert_eq!(
        dec.reasons,
        vec![r#"env MODE changed outside sanctuary: "hacked" → "prod""#.to_string()]
    );
    // Variables the image adds on its own are not drift.
    let mut c = seen(&d);
    c.env.insert("PATH".into(), "/bin".into());
    assert_eq!(service(&d, Some(&c), None, None).action, Action::UpToDate);
}

#[test]
fn a_foreign_container_of_the_same_name_blocks_the_service() {
    let d = want(WEB);
    let mut c = seen(&d);
    c.labels = BTreeMap::new();
    let dec = service(&d, Some(&c), None, None);
    assert_eq!(dec.action, Action::Blocked);
    assert!(dec.reasons[0].contains("does not own"), "{dec:?}");
}

#[test]
fn failed_or_interrupted_services_are_retried_and_finished_ones_are_not() {
    let d = want(WEB);
    let c = seen(&d);
    let failed = record(
        "old",
        RecordResult::Failed {
            message: "did not become healthy\n  last output".into(),
        },
    );
    assert_eq!(
        service(&d, Some(&c), Some(&failed), None).reasons,
        vec!["the last apply failed: did not become healthy".to_string()]
    );
    let interrupted = record("old", RecordResult::Ran);
    assert!(service(&d, Some(&c), Some(&interrupted), None).reasons[0].contains("interrupted"));
    assert_eq!(retry_reason(None, "new"), None);
}

#[test]
fn tasks_run_restore_or_stay_up_to_date_by_key() {
    let key = Key::new("task", "build", Default::default());
    let mut changed = key.clone();
    changed.inputs.insert("src/a.rs".into(), "h2".into());
    let fp = changed.fingerprint();
    let task = |last: Option<&Key>, missing: Vec<String>, force| {
        decide(Case::Task {
            key: &changed,
            fingerprint: &fp,
            last: Last {
                fingerprint: last.map(|k| k.fingerprint()),
                load: Box::new(move || last.cloned()),
            },
            missing_outputs: missing,
            force,
        })
    };
    assert_eq!(
        task(None, vec![], false).reasons,
        vec!["never ran".to_string()]
    );
    assert_eq!(
        task(Some(&key), vec![], false).reasons,
        vec!["input src/a.rs added".to_string()]
    );
    assert_eq!(task(Some(&changed), vec![], false).action, Action::UpToDate);
    let restore = task(Some(&changed), vec!["dist/app.js".into()], false);
    assert_eq!(restore.action, Action::Restore);
    assert_eq!(task(Some(&changed), vec![], true).action, Action::Run);
}

#[test]
fn images_are_built_or_pulled_when_absent() {
    let m = manifest(
        r#"project "demo"
image "ext" {
    reference "busybox:1"
}
"#,
    );
    let mut stat = crate::fingerprint::StatCache::load(Path::new("/nonexistent/statcache"));
    let d = desired::image(&m, "ext", &mut stat).unwrap();
    assert_eq!(
        decide(Case::Image {
            desired: &d,
            present: false
        })
        .action,
        Action::Pull
    );
    assert_eq!(
        decide(Case::Image {
            desired: &d,
            present: true
        })
        .action,
        Action::UpToDate
    );
}
