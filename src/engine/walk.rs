//! Walking a [`Plan`]: its steps become the scheduler's DAG, and [`Walk`] hands each step to
//! the executor of its kind. The walk keeps what executors share: which steps changed
//! something (so a dependent knows to compute its desired state again rather than trust the
//! plan's), the image tags resolved so far, and whether the plan came from a file (then a
//! step whose fresh decision differs from the saved one is refused, not carried out).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::session::Session;
use crate::exec::{self, Dag, Executor, Failure, NodeCtx, Options, Outcome, Reporter, Summary};
use crate::executors;
use crate::manifest::Kind;
use crate::plan::{Decision, Plan, Prepared, Step, Subject};
use crate::state::{NodeRecord, RecordResult};

/// The state one walk shares between its executors.
pub struct Walk<'s> {
    pub session: &'s Session,
    pub plan: &'s Plan,
    /// The plan was saved earlier: carry out exactly its steps.
    pub strict: bool,
    changed: Mutex<HashSet<usize>>,
    /// Image name → (tag, fingerprint), as resolved in this walk.
    tags: Mutex<BTreeMap<String, (String, String)>>,
    /// The project's default network, ensured once per walk by the first service that needs
    /// it: Docker allows two networks of one name, so concurrent check-then-create calls
    /// would make the name ambiguous, and fifty services asking one after the other would
    /// queue on it.
    pub default_network: tokio::sync::OnceCell<()>,
}

impl<'s> Walk<'s> {
    pub fn new(session: &'s Session, plan: &'s Plan, strict: bool) -> Self {
        Walk {
            session,
            plan,
            strict,
            changed: Mutex::new(HashSet::new()),
            tags: Mutex::new(BTreeMap::new()),
            default_network: tokio::sync::OnceCell::new(),
        }
    }

    /// What planning computed for step `i`.
    pub fn prepared(&self, i: usize) -> &Prepared {
        self.plan.prepared.get(i).unwrap_or(&Prepared::Nothing)
    }

    /// Whether a step that `i` waits for, directly or not, changed something in this walk:
    /// then what `i` wants must be computed again (a task rewrote an image's context).
    pub fn upstream_changed(&self, i: usize) -> bool {
        let changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        if changed.is_empty() {
            return false;
        }
        let mut stack: Vec<usize> = self.plan.steps[i].waits_for.clone();
        let mut seen = HashSet::new();
        while let Some(d) = stack.pop() {
            if !seen.insert(d) {
                continue;
            }
            if changed.contains(&d) {
                return true;
            }
            stack.extend(self.plan.steps[d].waits_for.iter().copied());
        }
        false
    }

    pub fn note_tag(&self, image: &str, tag: String, fingerprint: String) {
        self.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(image.to_string(), (tag, fingerprint));
    }

    pub fn tag_of(&self, image: &str) -> Option<(String, String)> {
        self.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(image)
            .cloned()
    }

    /// With a saved plan, refuses a step whose fresh decision is not the planned one —
    /// unless something this walk did upstream explains the difference.
    pub fn check_planned(&self, i: usize, fresh: &Decision) -> Result<(), Failure> {
        let planned = self.plan.steps[i].action;
        if !self.strict || fresh.action == planned || self.upstream_changed(i) {
            return Ok(());
        }
        Err(Failure::conflict(format!(
            "the saved plan said {planned}, but it is now {}{}; run `sanctuary plan -o FILE` again",
            fresh.action,
            fresh
                .reasons
                .first()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )))
    }

    /// Runs a step whose work is the engine's: outside the walk's job slots, under the
    /// session's bound on such steps.
    async fn on_engine<T>(&self, ctx: &NodeCtx, work: impl std::future::Future<Output = T>) -> T {
        ctx.idle(async {
            // The semaphore is never closed.
            let _slot = self.session.engine_steps.acquire().await.ok();
            work.await
        })
        .await
    }

    fn mark_changed(&self, i: usize) {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(i);
    }

    /// Records a failed Docker object in the state store, keeping what was last realised so
    /// the next plan can still say what changed, and marking it for a retry.
    fn record_failure(&self, step: &Step, message: &str) {
        let Some(id) = step.subject.node() else {
            return;
        };
        if !matches!(
            id.kind,
            Kind::Image | Kind::Volume | Kind::Network | Kind::Service
        ) {
            return;
        }
        let previous = self.session.record_of(id.kind.as_str(), &id.name);
        let (fingerprint, spec) = previous
            .map(|r| (r.fingerprint, r.spec))
            .unwrap_or_default();
        let _ = self.session.record(NodeRecord {
            kind: id.kind.to_string(),
            name: id.name.clone(),
            fingerprint,
            spec,
            finished_at: chrono::Utc::now(),
            result: RecordResult::Failed {
                message: message.to_string(),
            },
        });
    }
}

impl Executor<Step> for Walk<'_> {
    fn execute<'a>(&'a self, step: &'a Step, ctx: &'a NodeCtx) -> BoxFuture<'a, Outcome> {
        async move {
            let i = ctx.index();
            let result = match &step.subject {
                Subject::Object { .. } => {
                    self.on_engine(ctx, executors::object::execute(self, step, ctx))
                        .await
                }
                Subject::Node { id } => match id.kind {
                    Kind::Image => executors::image::execute(self, i, id, ctx).await,
                    Kind::Volume | Kind::Network => {
                        self.on_engine(ctx, executors::named::execute(self, i, id, ctx))
                            .await
                    }
                    // A service holds an engine slot only while it changes its container;
                    // its wait for health holds nothing (see the executor).
                    Kind::Service => {
                        ctx.idle(executors::service::execute(self, i, id, ctx))
                            .await
                    }
                    Kind::Task => executors::task::execute(self, i, id, ctx).await,
                    Kind::Test => executors::test::execute(self, i, id, ctx).await,
                    Kind::Backup => executors::backup::execute(self, step, id, ctx).await,
                    Kind::Sync => executors::sync::execute(self, i, id, ctx).await,
                    Kind::Secret => Ok(Outcome::UpToDate(None)),
                },
            };
            match result {
                Ok(outcome) => {
                    if matches!(outcome, Outcome::Ran(_)) {
                        self.mark_changed(i);
                    }
                    outcome
                }
                Err(mut failure) => {
                    if ctx.cancel().is_cancelled() {
                        failure.class = exec::FailureClass::Interrupted;
                    }
                    self.record_failure(step, &failure.message);
                    Outcome::Failed(failure)
                }
            }
        }
        .boxed()
    }
}

/// Walks `plan` and returns every step's final status. `strict` for a plan saved earlier.
pub async fn walk(
    session: &Session,
    plan: &Plan,
    strict: bool,
    reporter: Arc<dyn Reporter>,
    cancel: tokio_util::sync::CancellationToken,
) -> crate::error::Result<Summary> {
    let deps = plan.steps.iter().map(|s| s.waits_for.clone()).collect();
    // The planner only makes edges of the validated graph, so this holds; if it did not,
    // nothing is done.
    let dag = Dag::new(plan.steps.clone(), deps)
        .map_err(|e| crate::error::Error::Infrastructure(format!("the plan is not a DAG: {e}")))?;
    let walk = Walk::new(session, plan, strict);
    let options = Options {
        jobs: session.options.jobs.max(1),
        fail_fast: session.options.fail_fast,
    };
    let reporter: Arc<dyn Reporter> = Arc::new(super::masked::Masked(reporter));
    let reporter: Arc<dyn Reporter> = if crate::observe::traces::enabled() {
        Arc::new(super::traced::Traced::new(reporter, plan))
    } else {
        reporter
    };
    let summary = exec::run(&dag, &walk, reporter, options, cancel).await;
    session.finish();
    // Everything a caller prints or writes of the walk (stderr, JUnit) is masked too.
    Ok(super::masked::summary(&summary))
}
