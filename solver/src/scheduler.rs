//! The generic parallel scheduler.
//!
//! It knows nothing of filesystems: a [`Node`] is a [`Task`] plus input
//! edges, and the scheduler decides what runs when. Only nodes reachable
//! from the targets run; nodes with the same definition digest are one node;
//! every node whose inputs are ready runs, on at most `jobs` worker threads
//! the scheduler owns (a RUN blocks its worker, never a rayon thread); a
//! cache hit skips [`Task::run`]; the first failure stops new work, lets
//! the running nodes finish and is returned.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel as channel;

use crate::digest::{definition_digest, Key};

/// A finished input as a task sees it.
pub struct Input<'a, O> {
    /// The input's cache key.
    pub key: &'a Key,
    /// The input's result.
    pub output: &'a O,
}

/// One unit of work the scheduler can run.
pub trait Task: Sync {
    /// What the task produces.
    type Output: Send + Sync;
    /// Why it failed.
    type Error: Send + std::fmt::Display;

    /// Digest of the task itself, without its inputs (two nodes with equal
    /// digests and equal inputs are one node).
    fn definition(&self) -> Key;

    /// Whether results may be looked up in and stored into the cache.
    fn cacheable(&self) -> bool {
        true
    }

    /// The cache key, from the inputs' keys and results.
    ///
    /// # Errors
    /// When the key cannot be computed (e.g. a source file is missing).
    fn cache_key(&self, inputs: &[Input<'_, Self::Output>]) -> Result<Key, Self::Error>;

    /// The key dependents see for a result (run or cached). By default the
    /// cache key; a task whose results are content-addressed returns a key
    /// of the result itself, so that a task that ran again
    /// (`--no-cache-filter`) makes its dependents rerun exactly when its
    /// result changed.
    fn output_key(&self, key: &Key, _output: &Self::Output) -> Key {
        *key
    }

    /// Does the work.
    ///
    /// # Errors
    /// The task's own failure.
    fn run(
        &self,
        key: &Key,
        inputs: &[Input<'_, Self::Output>],
    ) -> Result<Self::Output, Self::Error>;
}

/// Where results are remembered across solves.
pub trait Cache<O, E>: Sync {
    /// A remembered result, if any.
    ///
    /// # Errors
    /// When the lookup itself fails.
    fn get(&self, key: &Key) -> Result<Option<O>, E>;
    /// Remembers a result.
    ///
    /// # Errors
    /// When it cannot be stored.
    fn put(&self, key: &Key, output: &O) -> Result<(), E>;
}

/// A cache that never hits (for `--no-cache` and tests).
pub struct NoCache;

impl<O, E> Cache<O, E> for NoCache {
    fn get(&self, _: &Key) -> Result<Option<O>, E> {
        Ok(None)
    }
    fn put(&self, _: &Key, _: &O) -> Result<(), E> {
        Ok(())
    }
}

/// A task and its input edges (indices of earlier nodes).
pub struct Node<T> {
    /// The work.
    pub task: T,
    /// Inputs, each `<` this node's own index.
    pub inputs: Vec<usize>,
}

/// What happened to a node, for progress display.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Its result was not cached: it is running now.
    Started,
    /// Its result came from the cache.
    Cached,
    /// It ran to completion.
    Done {
        /// Wall-clock seconds of `run`.
        seconds: f64,
    },
    /// It failed.
    Failed {
        /// The error, rendered.
        message: String,
    },
}

/// The first failure of a solve.
#[derive(Debug)]
pub struct Failure<E> {
    /// The node that failed.
    pub node: usize,
    /// Why.
    pub error: E,
}

/// The scheduler's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Worker threads (at least one is used).
    pub jobs: usize,
}

struct Job<O> {
    node: usize,
    inputs: Vec<(Key, Arc<O>)>,
}

type Finished<O, E> = Result<(Key, Arc<O>), E>;

/// Finished nodes' keys and results, by node index.
type Results<O> = [Option<(Key, Arc<O>)>];

/// The plan: which nodes run, deduplicated, and who waits for whom.
struct Plan {
    /// `canon[i]`: the node that does node `i`'s work (itself if unique).
    canon: Vec<usize>,
    /// Needed canonical nodes.
    needed: Vec<bool>,
    /// Distinct canonical inputs per canonical node.
    inputs: Vec<Vec<usize>>,
    /// Canonical nodes waiting for each canonical node.
    dependents: Vec<Vec<usize>>,
}

fn plan<T: Task>(nodes: &[Node<T>], targets: &[usize]) -> Plan {
    let n = nodes.len();
    let mut reachable = vec![false; n];
    for &t in targets {
        reachable[t] = true;
    }
    for i in (0..n).rev() {
        if reachable[i] {
            for &j in &nodes[i].inputs {
                assert!(j < i, "scheduler nodes must be in topological order");
                reachable[j] = true;
            }
        }
    }
    let mut canon: Vec<usize> = (0..n).collect();
    let mut digests = vec![Key([0; 32]); n];
    let mut seen: HashMap<Key, usize> = HashMap::new();
    let mut needed = vec![false; n];
    let mut inputs = vec![Vec::new(); n];
    let mut dependents = vec![Vec::new(); n];
    for i in 0..n {
        if !reachable[i] {
            continue;
        }
        let input_digests: Vec<Key> = nodes[i].inputs.iter().map(|&j| digests[j]).collect();
        digests[i] = definition_digest(&nodes[i].task.definition(), &input_digests);
        let c = *seen.entry(digests[i]).or_insert(i);
        canon[i] = c;
        if c != i {
            continue;
        }
        needed[i] = true;
        let mut ins: Vec<usize> = nodes[i].inputs.iter().map(|&j| canon[j]).collect();
        ins.sort_unstable();
        ins.dedup();
        for &j in &ins {
            dependents[j].push(i);
        }
        inputs[i] = ins;
    }
    Plan {
        canon,
        needed,
        inputs,
        dependents,
    }
}

fn execute<T: Task, C: Cache<T::Output, T::Error>>(
    nodes: &[Node<T>],
    canon: &[usize],
    cache: &C,
    observe: &(dyn Fn(usize, Progress) + Sync),
    job: Job<T::Output>,
) -> Finished<T::Output, T::Error> {
    let node = &nodes[job.node];
    // Inputs in the node's own order (duplicates allowed), from the
    // distinct canonical results the job carries.
    let by_canon: HashMap<usize, usize> = {
        let mut m = HashMap::new();
        let mut ins: Vec<usize> = node.inputs.iter().map(|&j| canon[j]).collect();
        ins.sort_unstable();
        ins.dedup();
        for (k, c) in ins.into_iter().enumerate() {
            m.insert(c, k);
        }
        m
    };
    let inputs: Vec<Input<'_, T::Output>> = node
        .inputs
        .iter()
        .map(|&j| {
            let (key, out) = &job.inputs[by_canon[&canon[j]]];
            Input {
                key,
                output: out.as_ref(),
            }
        })
        .collect();
    let key = node.task.cache_key(&inputs)?;
    if node.task.cacheable() {
        if let Some(hit) = cache.get(&key)? {
            observe(job.node, Progress::Cached);
            let key = node.task.output_key(&key, &hit);
            return Ok((key, Arc::new(hit)));
        }
    }
    observe(job.node, Progress::Started);
    let start = Instant::now();
    let out = node.task.run(&key, &inputs)?;
    if node.task.cacheable() {
        cache.put(&key, &out)?;
    }
    let key = node.task.output_key(&key, &out);
    observe(
        job.node,
        Progress::Done {
            seconds: start.elapsed().as_secs_f64(),
        },
    );
    Ok((key, Arc::new(out)))
}

/// Runs what `targets` need and returns their results, in `targets` order.
///
/// `observe` is called from worker threads with the index of the node that
/// does the work (the first of a set of identical nodes).
///
/// # Errors
/// The first failure; nodes running at that moment finish, no new node
/// starts.
///
/// # Panics
/// If the nodes are not in topological order, or re-raises a task's panic.
pub fn run<T, C>(
    nodes: &[Node<T>],
    targets: &[usize],
    cache: &C,
    settings: Settings,
    observe: &(dyn Fn(usize, Progress) + Sync),
) -> Result<Vec<Arc<T::Output>>, Failure<T::Error>>
where
    T: Task,
    C: Cache<T::Output, T::Error>,
{
    let plan = plan(nodes, targets);
    let n = nodes.len();
    let mut pending: Vec<usize> = plan.inputs.iter().map(Vec::len).collect();
    let mut results: Vec<Option<(Key, Arc<T::Output>)>> = (0..n).map(|_| None).collect();
    let remaining_total = plan.needed.iter().filter(|&&b| b).count();
    let jobs = settings.jobs.max(1).min(remaining_total.max(1));

    let (job_tx, job_rx) = channel::unbounded::<Job<T::Output>>();
    type Report<O, E> = (usize, std::thread::Result<Finished<O, E>>);
    let (res_tx, res_rx) = channel::unbounded::<Report<T::Output, T::Error>>();

    std::thread::scope(|s| {
        for _ in 0..jobs {
            let job_rx = job_rx.clone();
            let res_tx = res_tx.clone();
            let canon = &plan.canon;
            s.spawn(move || {
                for job in job_rx {
                    let node = job.node;
                    let r = panic::catch_unwind(AssertUnwindSafe(|| {
                        execute(nodes, canon, cache, observe, job)
                    }));
                    if res_tx.send((node, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(res_tx);
        drop(job_rx);

        let dispatch = |i: usize, results: &Results<T::Output>| {
            let inputs = plan.inputs[i]
                .iter()
                .map(|&j| {
                    let (k, o) = results[j].as_ref().expect("input finished");
                    (*k, Arc::clone(o))
                })
                .collect();
            job_tx
                .send(Job { node: i, inputs })
                .expect("workers live while jobs are pending");
        };

        let mut in_flight = 0usize;
        for (i, &waiting) in pending.iter().enumerate() {
            if plan.needed[i] && waiting == 0 {
                dispatch(i, &results);
                in_flight += 1;
            }
        }
        let mut failure: Option<Failure<T::Error>> = None;
        let mut panicked = None;
        while in_flight > 0 {
            let (i, r) = res_rx.recv().expect("a worker holds a sender");
            in_flight -= 1;
            match r {
                Err(p) => {
                    panicked.get_or_insert(p);
                }
                Ok(Err(error)) => {
                    observe(
                        i,
                        Progress::Failed {
                            message: error.to_string(),
                        },
                    );
                    if failure.is_none() {
                        failure = Some(Failure { node: i, error });
                    }
                }
                Ok(Ok(done)) => {
                    results[i] = Some(done);
                    if failure.is_some() || panicked.is_some() {
                        continue;
                    }
                    for &d in &plan.dependents[i] {
                        pending[d] -= 1;
                        if pending[d] == 0 {
                            dispatch(d, &results);
                            in_flight += 1;
                        }
                    }
                }
            }
        }
        drop(job_tx);
        if let Some(p) = panicked {
            panic::resume_unwind(p);
        }
        if let Some(f) = failure {
            return Err(f);
        }
        Ok(targets
            .iter()
            .map(|&t| {
                let (_, o) = results[plan.canon[t]].as_ref().expect("target solved");
                Arc::clone(o)
            })
            .collect())
    })
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
