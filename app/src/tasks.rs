//! The task table, in the spirit of rerun's `background_tasks.rs`: every job the worker runs
//! has a [`JobId`], a [`JobKind`] (what it is about), a [`TaskState`] and a cancel token. Views
//! find the job they show by its kind; replies from the worker name the job by id, so a new
//! kind of job (sampling) is one more [`JobKind`] variant, not another map.

use std::collections::BTreeMap;
use std::time::Instant;

use dcae::Cancel;

use crate::error::JobError;

/// A job's identity, unique for the app's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

/// What a job is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Reconstruction of an image (by id) with a model (by id).
    Reconstruct { image: u64, model: u64 },
    /// A generation with a generation model (by id); each run is its own job.
    Generate { model: u64 },
}

/// Where a job is.
#[derive(Debug)]
pub enum TaskState<O> {
    Queued,
    Running {
        stage: &'static str,
        done: u64,
        total: u64,
    },
    Done(O),
    Failed(JobError),
}

/// One job.
#[derive(Debug)]
pub struct Task<O> {
    pub kind: JobKind,
    pub state: TaskState<O>,
    pub cancel: Cancel,
    /// When it was queued, then when it started running.
    pub started: Instant,
}

impl<O> Task<O> {
    /// Queued or running.
    pub fn active(&self) -> bool {
        matches!(self.state, TaskState::Queued | TaskState::Running { .. })
    }
}

/// Every job of the session by id; `O` is what a finished job holds.
#[derive(Debug)]
pub struct Tasks<O> {
    next: u64,
    tasks: BTreeMap<JobId, Task<O>>,
}

impl<O> Default for Tasks<O> {
    fn default() -> Self {
        Self {
            next: 0,
            tasks: BTreeMap::new(),
        }
    }
}

impl<O> Tasks<O> {
    /// Adds a queued job and returns its id and cancel token.
    pub fn add(&mut self, kind: JobKind) -> (JobId, Cancel) {
        self.next += 1;
        let id = JobId(self.next);
        let cancel = Cancel::new();
        self.tasks.insert(
            id,
            Task {
                kind,
                state: TaskState::Queued,
                cancel: cancel.clone(),
                started: Instant::now(),
            },
        );
        (id, cancel)
    }

    pub fn get(&self, id: JobId) -> Option<&Task<O>> {
        self.tasks.get(&id)
    }

    pub fn get_mut(&mut self, id: JobId) -> Option<&mut Task<O>> {
        self.tasks.get_mut(&id)
    }

    /// The newest job of `kind`.
    pub fn latest(&self, kind: JobKind) -> Option<(JobId, &Task<O>)> {
        self.tasks
            .iter()
            .rev()
            .find(|(_, t)| t.kind == kind)
            .map(|(id, t)| (*id, t))
    }

    /// The newest job of `kind`, mutably.
    pub fn latest_mut(&mut self, kind: JobKind) -> Option<&mut Task<O>> {
        self.tasks.values_mut().rev().find(|t| t.kind == kind)
    }

    /// Marks a queued job running, or updates a running job's progress.
    pub fn progress(&mut self, id: JobId, stage: &'static str, done: u64, total: u64) {
        if let Some(t) = self.tasks.get_mut(&id) {
            if matches!(t.state, TaskState::Queued) {
                t.started = Instant::now();
            }
            if t.active() {
                t.state = TaskState::Running { stage, done, total };
            }
        }
    }

    /// Records a job's outcome.
    pub fn finish(&mut self, id: JobId, outcome: Result<O, JobError>) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.state = match outcome {
                Ok(o) => TaskState::Done(o),
                Err(e) => TaskState::Failed(e),
            };
        }
    }

    /// Cancels every queued or running job (those matching `which`); returns how many.
    pub fn cancel_where(&self, which: impl Fn(&JobKind) -> bool) -> usize {
        self.tasks
            .values()
            .filter(|t| t.active() && which(&t.kind))
            .inspect(|t| t.cancel.cancel())
            .count()
    }

    /// Drops the jobs `keep` rejects, cancelling those still active.
    pub fn retain(&mut self, keep: impl Fn(&JobKind, &TaskState<O>) -> bool) {
        self.tasks.retain(|_, t| {
            let k = keep(&t.kind, &t.state);
            if !k {
                t.cancel.cancel();
            }
            k
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = (JobId, &Task<O>)> {
        self.tasks.iter().map(|(id, t)| (*id, t))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (JobId, &mut Task<O>)> {
        self.tasks.iter_mut().map(|(id, t)| (*id, t))
    }

    /// True while any job is queued or running.
    pub fn any_active(&self) -> bool {
        self.tasks.values().any(Task::active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::JobErrorKind;

    fn kind(image: u64) -> JobKind {
        JobKind::Reconstruct { image, model: 1 }
    }

    #[test]
    fn lifecycle_by_id_and_lookup_by_kind() {
        let mut t: Tasks<&str> = Tasks::default();
        let (a, _) = t.add(kind(1));
        let (b, cancel_b) = t.add(kind(2));
        assert!(t.any_active());
        t.progress(a, "encode", 1, 4);
        assert!(matches!(
            t.get(a).unwrap().state,
            TaskState::Running { done: 1, .. }
        ));
        t.finish(a, Ok("done"));
        assert!(matches!(t.get(a).unwrap().state, TaskState::Done("done")));
        // A late progress report does not resurrect a finished job.
        t.progress(a, "decode", 2, 4);
        assert!(matches!(t.get(a).unwrap().state, TaskState::Done(_)));
        assert_eq!(t.cancel_where(|_| true), 1);
        assert!(cancel_b.is_cancelled());
        t.finish(b, Err(JobError::cancelled()));
        assert!(!t.any_active());
        // A retry is a new job; the newest of a kind is the one shown.
        let (c, _) = t.add(kind(2));
        assert_eq!(t.latest(kind(2)).map(|(id, _)| id), Some(c));
        t.retain(|k, _| *k != kind(1));
        assert!(t.latest(kind(1)).is_none());
        assert!(matches!(
            t.get(b).unwrap().state,
            TaskState::Failed(JobError {
                kind: JobErrorKind::Cancelled,
                ..
            })
        ));
    }
}
