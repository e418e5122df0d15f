//! The engine against the hand-written fake backend: plan and walk agree on creating,
//! replacing, repairing and deleting, a foreign container blocks both, a saved plan that no
//! longer matches is refused step by step, and work of every kind walks in dependency order.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::backend::fake::FakeBackend;
use crate::backend::{names, Backend, ContainerSpec, ContainerState};
use crate::error::ExitCode;
use crate::exec::report::Silent;
use crate::exec::Status;
use crate::manifest::{self, Kind, NodeId};
use crate::plan::{Action, Plan};

const STACK: &str = r#"project "fk"
volume "data"
service "web" {
    image "busybox:1"
    env MODE="prod"
    mount "data" "/data"
    health { cmd "true"; interval "1s"; }
}
service "worker" {
    image "busybox:1"
    depends-on "web" condition="healthy"
}
"#;

struct World {
    dir: tempfile::TempDir,
    fake: Arc<FakeBackend>,
}

impl World {
    fn new(text: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Sanctuary.kdl"), text).unwrap();
        let fake = Arc::new(FakeBackend::new());
        fake.add_image("busybox:1", BTreeMap::new());
        World { dir, fake }
    }

    fn rewrite(&self, text: &str) {
        std::fs::write(self.dir.path().join("Sanctuary.kdl"), text).unwrap();
    }

    fn session(&self) -> Session {
        let m = manifest::load(&self.dir.path().join("Sanctuary.kdl"))
            .unwrap()
            .manifest;
        let options = Options {
            jobs: 2,
            ..Options::default()
        };
        Session::new(Arc::new(m), options)
            .unwrap()
            .with_backend(Arc::clone(&self.fake) as Arc<dyn Backend>)
    }

    async fn plan(&self, selection: &Selection) -> (Session, Plan) {
        let s = self.session();
        let p = plan(&s, selection).await.unwrap();
        (s, p)
    }

    /// Plans and walks `selection`; returns the plan, the summary's statuses and the code.
    async fn apply(&self, selection: &Selection) -> (Plan, BTreeMap<String, Status>, ExitCode) {
        let (s, p) = self.plan(selection).await;
        let cancel = CancellationToken::new();
        let summary = walk(&s, &p, false, Arc::new(Silent), cancel.clone())
            .await
            .unwrap();
        let statuses = summary
            .nodes
            .iter()
            .map(|n| (n.label.clone(), n.status.clone()))
            .collect();
        (p, statuses, exit_code(&summary, &cancel))
    }

    fn state(&self, container: &str) -> Option<ContainerState> {
        // The fake answers at once; polling its future once is enough.
        let fut = self.fake.inspect_container(container);
        futures_util::FutureExt::now_or_never(fut)
            .expect("the fake answers at once")
            .unwrap()
            .map(|c| c.state)
    }
}

fn whole() -> Selection {
    Selection::Apply { targets: vec![] }
}

fn action_of(p: &Plan, node: &str) -> Action {
    p.steps
        .iter()
        .find(|s| s.node == node)
        .unwrap_or_else(|| panic!("no step {node} in {:?}", p.steps))
        .action
}

#[tokio::test]
async fn a_fresh_stack_is_created_in_order_and_a_second_apply_changes_nothing() {
    let w = World::new(STACK);
    let (p, st, code) = w.apply(&whole()).await;
    assert_eq!(code, ExitCode::Ok, "{st:?}");
    assert_eq!(action_of(&p, "volume.data"), Action::Create);
    assert_eq!(action_of(&p, "service.web"), Action::Create);
    assert_eq!(w.state("fk-web"), Some(ContainerState::Running));
    assert_eq!(w.state("fk-worker"), Some(ContainerState::Running));
    // worker waited for web: web was created first.
    let created = w.fake.calls_of(crate::backend::Action::CreateContainer);
    assert_eq!(created, vec!["fk-web".to_string(), "fk-worker".to_string()]);

    let (_, again) = w.plan(&whole()).await;
    assert!(!again.has_changes(), "{}", again.render(true));
}

#[tokio::test]
async fn a_changed_env_replaces_only_that_service_and_names_the_change() {
    let w = World::new(STACK);
    w.apply(&whole()).await;
    w.rewrite(&STACK.replace("prod", "debug"));
    let (_, p) = w.plan(&whole()).await;
    let web = p.steps.iter().find(|s| s.node == "service.web").unwrap();
    assert_eq!(web.action, Action::Replace);
    assert_eq!(
        web.reasons,
        vec![r#"env MODE changed: "prod" → "debug""#.to_string()]
    );
    assert_eq!(action_of(&p, "service.worker"), Action::UpToDate);
    let (_, st, code) = w.apply(&whole()).await;
    assert_eq!(code, ExitCode::Ok, "{st:?}");
    assert_eq!(
        w.fake.container_spec("fk-web").unwrap().env["MODE"],
        "debug"
    );
    assert!(!w.plan(&whole()).await.1.has_changes());
}

#[tokio::test]
async fn removed_and_stopped_containers_are_repaired() {
    let w = World::new(STACK);
    w.apply(&whole()).await;
    w.fake.remove_container("fk-web", true).await.unwrap();
    w.fake
        .stop_container("fk-worker", std::time::Duration::ZERO)
        .await
        .unwrap();
    let (_, p) = w.plan(&whole()).await;
    assert_eq!(action_of(&p, "service.web"), Action::Create);
    assert_eq!(action_of(&p, "service.worker"), Action::Start);
    let (_, st, code) = w.apply(&whole()).await;
    assert_eq!(code, ExitCode::Ok, "{st:?}");
    assert_eq!(w.state("fk-web"), Some(ContainerState::Running));
    assert_eq!(w.state("fk-worker"), Some(ContainerState::Running));
    assert!(!w.plan(&whole()).await.1.has_changes());
}

#[tokio::test]
async fn orphans_are_deleted_only_when_the_whole_stack_is_applied() {
    let w = World::new(STACK);
    w.apply(&whole()).await;
    let old = ContainerSpec {
        name: "fk-old".into(),
        image: "busybox:1".into(),
        labels: names::labels("fk", "service.old", Some("f")),
        ..ContainerSpec::default()
    };
    w.fake.create_container(&old).await.unwrap();
    let one = Selection::Apply {
        targets: vec![NodeId::new(Kind::Service, "worker")],
    };
    let (_, p) = w.plan(&one).await;
    assert!(p.steps.iter().all(|s| s.action != Action::Delete));
    let (p, st, code) = w.apply(&whole()).await;
    assert_eq!(code, ExitCode::Ok, "{st:?}");
    assert_eq!(action_of(&p, "container fk-old"), Action::Delete);
    assert_eq!(w.state("fk-old"), None);
}

#[tokio::test]
async fn a_foreign_container_of_the_same_name_is_blocked_in_plan_and_apply() {
    let w = World::new(STACK);
    let foreign = ContainerSpec {
        name: "fk-worker".into(),
        image: "busybox:1".into(),
        ..ContainerSpec::default()
    };
    w.fake.create_container(&foreign).await.unwrap();
    let (_, p) = w.plan(&whole()).await;
    assert_eq!(action_of(&p, "service.worker"), Action::Blocked);
    let (_, st, code) = w.apply(&whole()).await;
    assert_eq!(code, ExitCode::Conflict);
    assert!(
        matches!(&st["service.worker"], Status::Failed { message, .. } if message.contains("does not own")),
        "{st:?}"
    );
    // Everything else converged, and the foreign container was left alone.
    assert_eq!(w.state("fk-web"), Some(ContainerState::Running));
    assert!(w
        .fake
        .container_spec("fk-worker")
        .unwrap()
        .labels
        .is_empty());
}

#[tokio::test]
async fn a_saved_plan_whose_step_no_longer_holds_is_refused_for_that_step() {
    let w = World::new(STACK);
    w.apply(&whole()).await;
    w.rewrite(&STACK.replace("prod", "debug"));
    let (s, p) = w.plan(&whole()).await;
    assert_eq!(action_of(&p, "service.web"), Action::Replace);
    // Reality moves after the plan was made: someone removes the container.
    w.fake.remove_container("fk-web", true).await.unwrap();
    let cancel = CancellationToken::new();
    let summary = walk(&s, &p, true, Arc::new(Silent), cancel.clone())
        .await
        .unwrap();
    assert_eq!(exit_code(&summary, &cancel), ExitCode::Conflict);
    let web = summary
        .nodes
        .iter()
        .find(|n| n.label == "service.web")
        .unwrap();
    assert!(
        matches!(&web.status, Status::Failed { message, .. } if message.contains("saved plan said replace")),
        "{:?}",
        web.status
    );
    assert_eq!(
        w.state("fk-web"),
        None,
        "nothing was created for the refused step"
    );
}

#[tokio::test]
async fn a_service_that_never_becomes_healthy_fails_as_infrastructure_and_skips_dependents() {
    let w = World::new(&STACK.replace("health {", "ready-timeout \"300ms\"\n    health {"));
    w.fake.never_healthy("fk-web");
    w.fake.set_exec_result(
        "fk-web",
        crate::backend::ExecResult {
            exit_code: 1,
            output: "not yet".into(),
        },
    );
    let (_, st, code) = w.apply(&whole()).await;
    assert_eq!(code, ExitCode::Infrastructure);
    assert!(matches!(st["service.web"], Status::Failed { .. }), "{st:?}");
    assert!(
        matches!(st["service.worker"], Status::Skipped { .. }),
        "{st:?}"
    );
    // The failure is recorded: the next plan retries it.
    let (_, p) = w.plan(&whole()).await;
    let web = p.steps.iter().find(|s| s.node == "service.web").unwrap();
    assert_eq!(web.action, Action::Replace);
    assert!(web.reasons[0].contains("the last apply failed"), "{web:?}");
}

const BACKUP: &str = r#"project "fk"
task "dump" {
    run "mkdir -p data && echo rows > data/dump.sql"
    run "test -z \"$FAIL\""
    env FAIL="${FAIL:-}"
}
backup "db" {
    path "data"
    depends-on "dump"
    copy "primary" path="backups"
}
"#;

#[tokio::test]
async fn a_backup_runs_the_task_it_depends_on_first() {
    let w = World::new(BACKUP);
    let sel = Selection::Backups {
        targets: vec![NodeId::new(Kind::Backup, "db")],
    };
    let (p, st, code) = w.apply(&sel).await;
    assert_eq!(code, ExitCode::Ok, "{st:?}");
    assert_eq!(p.steps.len(), 2);
    assert_eq!(
        p.steps[1].waits_for,
        vec![0],
        "the backup waits for the dump"
    );
    assert!(matches!(st["backup.db"], Status::Ran { .. }), "{st:?}");
    let snapshots = std::fs::read_dir(w.dir.path().join("backups"))
        .unwrap()
        .count();
    assert!(snapshots > 0);
}

#[tokio::test]
async fn a_failed_task_skips_the_backup_that_depends_on_it() {
    let w = World::new(&BACKUP.replace("${FAIL:-}", "yes"));
    let sel = Selection::Backups {
        targets: vec![NodeId::new(Kind::Backup, "db")],
    };
    let (_, st, code) = w.apply(&sel).await;
    assert_eq!(code, ExitCode::Failed);
    assert!(matches!(st["dump"], Status::Failed { .. }), "{st:?}");
    assert!(
        matches!(&st["backup.db"], Status::Skipped { because } if because == "dump"),
        "{st:?}"
    );
    assert!(!w.dir.path().join("backups").exists());
}

#[tokio::test]
async fn destroy_with_volumes_deletes_nothing_of_the_data_when_a_backup_fails() {
    let text = format!(
        "{STACK}backup \"data\" {{\n    volume \"data\"\n    copy \"primary\" path=\"/proc/forbidden\"\n}}\n"
    );
    let w = World::new(&text);
    w.apply(&whole()).await;
    let sel = Selection::Destroy {
        volumes: true,
        images: false,
    };
    let (p, st, code) = w.apply(&sel).await;
    assert_ne!(code, ExitCode::Ok, "{st:?}");
    assert_eq!(action_of(&p, "backup.data"), Action::VerifiedBackup);
    assert!(
        matches!(st["volume fk-data"], Status::Skipped { .. }),
        "{st:?}"
    );
    assert!(w.fake.volume_names().contains(&"fk-data".to_string()));
    assert_eq!(w.state("fk-web"), None, "the containers went first");
}
