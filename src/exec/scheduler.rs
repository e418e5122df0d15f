//! The DAG walk. [`run`] hands each node of a [`Dag`] to an [`Executor`] once every node it
//! depends on has succeeded, keeps at most `jobs` executors running, and waits for each
//! answer before releasing that node's dependents. It never does the work itself.
//!
//! Failure: the failed node's transitive dependents become `Skipped { because }`, and
//! independent work carries on — unless `fail_fast`, where no new node starts (running ones
//! finish) and the rest end as `NotRun`. Cancellation (the token, e.g. on Ctrl-C): no new
//! node starts, running executors see the token through their [`NodeCtx`], and unstarted
//! nodes end as `Cancelled`.
//!
//! Executors run as futures polled concurrently on the caller's task, so they may borrow the
//! node and the executor; an executor that needs CPU or blocking I/O should hand that to
//! `tokio::task::spawn_blocking` or a child process rather than block the walk.
//!
//! `jobs` counts slots, not nodes: an executor that only waits on something outside the
//! process (a container becoming healthy) gives its slot back for the wait with
//! [`NodeCtx::idle`], so fifty services waiting for health do not hold up the fifty-first.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::dag::Dag;
use super::outcome::{Failure, Outcome, Status};
use super::report::Reporter;
use super::summary::{NodeResult, Summary};

/// Does the work for one node. Implemented by the callers of the scheduler (apply, run,
/// test, backup, sync); tests use a recording executor.
pub trait Executor<N>: Send + Sync {
    /// Does the work for `node` and says how it went. Output goes through
    /// [`NodeCtx::emit`]; long work should stop early when [`NodeCtx::cancel`] fires.
    fn execute<'a>(&'a self, node: &'a N, ctx: &'a NodeCtx) -> BoxFuture<'a, Outcome>;
}

/// What an executor gets besides its node: a way to print, the run's cancellation token, and
/// its job slot.
pub struct NodeCtx {
    index: usize,
    label: String,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
    slots: Arc<Semaphore>,
    slot: Mutex<Option<OwnedSemaphorePermit>>,
}

impl NodeCtx {
    /// The node's index in the DAG.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The node's label, as the reporter shows it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Emits one line of output; the reporter prefixes it with the node's label.
    pub fn emit(&self, line: &str) {
        self.reporter.output(&self.label, line);
    }

    /// Hands a machine-readable result of the node to the reporter (shown with `--json`).
    pub fn data(&self, value: &serde_json::Value) {
        self.reporter.data(&self.label, value);
    }

    /// Cancelled when the run is interrupted; long work should watch it.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Runs `wait` with this node's job slot given back, so other nodes can work meanwhile,
    /// and takes a slot again before returning. For waits on the outside world only.
    pub async fn idle<F: std::future::Future>(&self, wait: F) -> F::Output {
        let held = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let gave_back = held.is_some();
        drop(held);
        let out = wait.await;
        if gave_back {
            // The semaphore is never closed, so acquiring only waits.
            let permit = Arc::clone(&self.slots).acquire_owned().await.ok();
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = permit;
        }
        out
    }
}

/// How the walk behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Most executors running at once; a value of 0 is treated as 1.
    pub jobs: usize,
    /// Stop starting new nodes after the first failure.
    pub fail_fast: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: num_cpus::get().max(1),
            fail_fast: false,
        }
    }
}

/// Walks `dag`, handing ready nodes to `executor`, and returns every node's final status.
/// Events go to `reporter`; `cancel` stops the walk early.
pub async fn run<N, E>(
    dag: &Dag<N>,
    executor: &E,
    reporter: Arc<dyn Reporter>,
    options: Options,
    cancel: CancellationToken,
) -> Summary
where
    N: Sync,
    E: Executor<N> + ?Sized,
{
    let started_at = Instant::now();
    let jobs = options.jobs.max(1);
    let len = dag.len();
    reporter.run_started(len);

    let mut status: Vec<Option<Status>> = vec![None; len];
    let mut durations = vec![Duration::ZERO; len];
    let mut waiting_on: Vec<usize> = (0..len).map(|i| dag.deps(i).len()).collect();
    // Lowest index first, so a run over the same DAG starts nodes in a predictable order.
    let mut ready: BTreeSet<usize> = (0..len).filter(|&i| waiting_on[i] == 0).collect();
    let mut running = FuturesUnordered::new();
    let mut stopping = false;
    let slots = Arc::new(Semaphore::new(jobs));

    loop {
        if cancel.is_cancelled() {
            stopping = true;
        }
        while !stopping && !ready.is_empty() {
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                break;
            };
            let Some(i) = ready.pop_first() else { break };
            reporter.node_started(dag.label(i));
            let ctx = NodeCtx {
                index: i,
                label: dag.label(i).to_string(),
                reporter: Arc::clone(&reporter),
                cancel: cancel.clone(),
                slots: Arc::clone(&slots),
                slot: Mutex::new(Some(permit)),
            };
            running.push(async move {
                let begun = Instant::now();
                // A panicking executor fails its node instead of tearing down the whole run.
                let outcome = AssertUnwindSafe(executor.execute(&dag.nodes()[i], &ctx))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Outcome::Failed(Failure::work("executor panicked")));
                // The slot goes back with the context, before dependents are released.
                drop(ctx);
                (i, outcome, begun.elapsed())
            });
        }
        if running.is_empty() {
            break;
        }

        let next = if stopping {
            running.next().await
        } else {
            let waiting = !ready.is_empty();
            tokio::select! {
                biased;
                done = running.next() => done,
                _ = cancel.cancelled() => continue,
                // A node gave its slot back while it waits: start the next ready one.
                permit = Arc::clone(&slots).acquire_owned(), if waiting => {
                    drop(permit);
                    continue;
                }
            }
        };
        let Some((i, outcome, took)) = next else {
            break;
        };

        durations[i] = took;
        let st = Status::from(outcome);
        reporter.node_finished(dag.label(i), &st, took);
        let ok = st.is_success();
        status[i] = Some(st);
        if ok {
            for &d in dag.dependents(i) {
                waiting_on[d] -= 1;
                if waiting_on[d] == 0 && status[d].is_none() {
                    ready.insert(d);
                }
            }
        } else if cancel.is_cancelled() {
            // Most likely the failure *is* the interruption; its dependents were cancelled,
            // not skipped, and the summary says so below.
            stopping = true;
        } else {
            skip_dependents(dag, i, &mut status, &mut ready, reporter.as_ref());
            if options.fail_fast {
                stopping = true;
            }
        }
    }

    let interrupted = cancel.is_cancelled();
    for (i, st) in status.iter_mut().enumerate() {
        if st.is_none() {
            let s = if interrupted {
                Status::Cancelled
            } else {
                Status::NotRun
            };
            reporter.node_finished(dag.label(i), &s, Duration::ZERO);
            *st = Some(s);
        }
    }

    let summary = Summary {
        nodes: status
            .into_iter()
            .enumerate()
            .map(|(i, st)| NodeResult {
                index: i,
                label: dag.label(i).to_string(),
                status: st.unwrap_or(Status::NotRun),
                duration: durations[i],
            })
            .collect(),
        elapsed: started_at.elapsed(),
        interrupted,
    };
    reporter.run_finished(&summary);
    summary
}

/// Marks every not-yet-finished transitive dependent of `failed` as skipped because of it.
fn skip_dependents<N>(
    dag: &Dag<N>,
    failed: usize,
    status: &mut [Option<Status>],
    ready: &mut BTreeSet<usize>,
    reporter: &dyn Reporter,
) {
    let because = dag.label(failed).to_string();
    let mut stack: Vec<usize> = dag.dependents(failed).to_vec();
    while let Some(d) = stack.pop() {
        if status[d].is_some() {
            continue;
        }
        ready.remove(&d);
        let s = Status::Skipped {
            because: because.clone(),
        };
        reporter.node_finished(dag.label(d), &s, Duration::ZERO);
        status[d] = Some(s);
        stack.extend_from_slice(dag.dependents(d));
    }
}

#[cfg(test)]
mod tests;
