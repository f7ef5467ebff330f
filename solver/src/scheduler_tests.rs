//! Scheduler tests with fake tasks and call counters: no filesystems.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::*;

/// Two tasks meet here to prove they ran at the same time.
#[derive(Default)]
struct Rendezvous {
    arrived: Mutex<usize>,
    cv: Condvar,
}

impl Rendezvous {
    /// Waits until `n` tasks arrived; false if they never did (a generous
    /// timeout only keeps a broken scheduler from hanging the test).
    fn meet(&self, n: usize) -> bool {
        let mut a = self.arrived.lock().unwrap();
        *a += 1;
        self.cv.notify_all();
        let (a, _) = self
            .cv
            .wait_timeout_while(a, Duration::from_secs(30), |a| *a < n)
            .unwrap();
        *a >= n
    }
}

#[derive(Default)]
struct World {
    runs: Mutex<HashMap<String, usize>>,
    met: AtomicUsize,
    rendezvous: Rendezvous,
}

impl World {
    fn runs(&self, name: &str) -> usize {
        self.runs.lock().unwrap().get(name).copied().unwrap_or(0)
    }
    fn total_runs(&self) -> usize {
        self.runs.lock().unwrap().values().sum()
    }
}

struct Fake<'w> {
    name: String,
    value: i64,
    fail: bool,
    meet: bool,
    cacheable: bool,
    world: &'w World,
}

impl<'w> Fake<'w> {
    fn new(world: &'w World, name: &str, value: i64) -> Self {
        Fake {
            name: name.to_string(),
            value,
            fail: false,
            meet: false,
            cacheable: true,
            world,
        }
    }
}

impl Task for Fake<'_> {
    type Output = i64;
    type Error = String;

    fn definition(&self) -> Key {
        Key::of(format!("{}={}", self.name, self.value).as_bytes())
    }
    fn cacheable(&self) -> bool {
        self.cacheable
    }
    fn cache_key(&self, inputs: &[Input<'_, i64>]) -> Result<Key, String> {
        let mut h = blake3::Hasher::new();
        h.update(&self.definition().0);
        for i in inputs {
            h.update(&i.key.0);
        }
        Ok(h.finalize().into())
    }
    fn run(&self, _key: &Key, inputs: &[Input<'_, i64>]) -> Result<i64, String> {
        *self
            .world
            .runs
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() += 1;
        if self.meet && self.world.rendezvous.meet(2) {
            self.world.met.fetch_add(1, Ordering::SeqCst);
        }
        if self.fail {
            return Err(format!("{} failed", self.name));
        }
        Ok(self.value + inputs.iter().map(|i| *i.output).sum::<i64>())
    }
}

#[derive(Default)]
struct MemCache {
    map: Mutex<HashMap<Key, i64>>,
    gets: AtomicUsize,
    puts: AtomicUsize,
}

impl Cache<i64, String> for MemCache {
    fn get(&self, key: &Key) -> Result<Option<i64>, String> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.map.lock().unwrap().get(key).copied())
    }
    fn put(&self, key: &Key, output: &i64) -> Result<(), String> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.map.lock().unwrap().insert(*key, *output);
        Ok(())
    }
}

fn node<'w>(task: Fake<'w>, inputs: &[usize]) -> Node<Fake<'w>> {
    Node {
        task,
        inputs: inputs.to_vec(),
    }
}

fn quiet(_: usize, _: Progress) {}

fn jobs(n: usize) -> Settings {
    Settings { jobs: n }
}

/// a, b → c; d unused.
fn diamond(w: &World) -> Vec<Node<Fake<'_>>> {
    vec![
        node(Fake::new(w, "a", 1), &[]),
        node(Fake::new(w, "b", 10), &[]),
        node(Fake::new(w, "c", 100), &[0, 1]),
        node(Fake::new(w, "d", 1000), &[2]),
    ]
}

#[test]
fn computes_results_and_runs_only_what_the_target_needs() {
    let w = World::default();
    let nodes = diamond(&w);
    let out = run(&nodes, &[2], &NoCache, jobs(2), &quiet).unwrap();
    assert_eq!(*out[0], 111);
    assert_eq!(w.runs("d"), 0);
    assert_eq!(w.total_runs(), 3);
}

#[test]
fn cache_hits_skip_run_and_misses_are_stored() {
    let w = World::default();
    let cache = MemCache::default();
    let nodes = diamond(&w);
    run(&nodes, &[2], &cache, jobs(2), &quiet).unwrap();
    assert_eq!(cache.puts.load(Ordering::SeqCst), 3);
    let events = Mutex::new(Vec::new());
    let observe = |i: usize, p: Progress| events.lock().unwrap().push((i, p));
    let out = run(&nodes, &[2], &cache, jobs(2), &observe).unwrap();
    assert_eq!(*out[0], 111);
    assert_eq!(w.total_runs(), 3, "second solve is fully cached");
    let events = events.into_inner().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|(_, p)| *p == Progress::Cached));
}

#[test]
fn uncacheable_tasks_always_run() {
    let w = World::default();
    let cache = MemCache::default();
    let mut a = Fake::new(&w, "a", 1);
    a.cacheable = false;
    let nodes = vec![node(a, &[]), node(Fake::new(&w, "b", 2), &[0])];
    run(&nodes, &[1], &cache, jobs(1), &quiet).unwrap();
    run(&nodes, &[1], &cache, jobs(1), &quiet).unwrap();
    assert_eq!(w.runs("a"), 2);
    assert_eq!(w.runs("b"), 1);
}

#[test]
fn identical_definitions_are_one_node() {
    let w = World::default();
    // Two "stages" doing the same work: a → x, a' → x' with a == a', x == x'.
    let nodes = vec![
        node(Fake::new(&w, "a", 1), &[]),
        node(Fake::new(&w, "x", 2), &[0]),
        node(Fake::new(&w, "a", 1), &[]),
        node(Fake::new(&w, "x", 2), &[2]),
        node(Fake::new(&w, "join", 0), &[1, 3]),
    ];
    let out = run(&nodes, &[4, 3], &NoCache, jobs(2), &quiet).unwrap();
    assert_eq!(*out[0], 6);
    assert_eq!(*out[1], 3);
    assert_eq!(w.runs("a"), 1);
    assert_eq!(w.runs("x"), 1);
}

#[test]
fn independent_tasks_overlap_on_two_workers() {
    let w = World::default();
    let mut a = Fake::new(&w, "a", 1);
    a.meet = true;
    let mut b = Fake::new(&w, "b", 2);
    b.meet = true;
    let nodes = vec![
        node(a, &[]),
        node(b, &[]),
        node(Fake::new(&w, "c", 0), &[0, 1]),
    ];
    let out = run(&nodes, &[2], &NoCache, jobs(2), &quiet).unwrap();
    assert_eq!(*out[0], 3);
    assert_eq!(w.met.load(Ordering::SeqCst), 2, "both ran at the same time");
}

#[test]
fn first_failure_is_returned_and_dependents_never_start() {
    let w = World::default();
    let mut bad = Fake::new(&w, "bad", 0);
    bad.fail = true;
    let nodes = vec![
        node(bad, &[]),
        node(Fake::new(&w, "after", 1), &[0]),
        node(Fake::new(&w, "other", 1), &[]),
        node(Fake::new(&w, "join", 1), &[1, 2]),
    ];
    let events = Mutex::new(Vec::new());
    let observe = |i: usize, p: Progress| events.lock().unwrap().push((i, p));
    let err = run(&nodes, &[3], &NoCache, jobs(1), &observe).unwrap_err();
    assert_eq!(err.node, 0);
    assert_eq!(err.error, "bad failed");
    assert_eq!(w.runs("after"), 0);
    assert_eq!(w.runs("join"), 0);
    let events = events.into_inner().unwrap();
    assert!(events.contains(&(
        0,
        Progress::Failed {
            message: "bad failed".into()
        }
    )));
}

#[test]
fn a_failure_stops_new_work_on_a_long_chain() {
    let w = World::default();
    let mut nodes = vec![node(Fake::new(&w, "root", 0), &[])];
    let mut bad = Fake::new(&w, "bad", 0);
    bad.fail = true;
    nodes.push(node(bad, &[0]));
    for i in 0..100 {
        let prev = nodes.len() - 1;
        nodes.push(node(Fake::new(&w, &format!("n{i}"), 1), &[prev]));
    }
    let last = nodes.len() - 1;
    assert!(run(&nodes, &[last], &NoCache, jobs(2), &quiet).is_err());
    assert_eq!(w.total_runs(), 2);
}

#[test]
#[should_panic(expected = "boom")]
fn a_panicking_task_is_re_raised_not_hung() {
    struct Boom;
    impl Task for Boom {
        type Output = ();
        type Error = String;
        fn definition(&self) -> Key {
            Key::of(b"boom")
        }
        fn cache_key(&self, _: &[Input<'_, ()>]) -> Result<Key, String> {
            Ok(Key::of(b"boom"))
        }
        fn run(&self, _: &Key, _: &[Input<'_, ()>]) -> Result<(), String> {
            panic!("boom")
        }
    }
    let nodes = vec![Node {
        task: Boom,
        inputs: vec![],
    }];
    let _ = run(&nodes, &[0], &NoCache, jobs(2), &quiet);
}

#[test]
fn ten_thousand_vertices() {
    let w = World::default();
    let cache = MemCache::default();
    let mut nodes = Vec::with_capacity(10_000);
    for i in 0..10_000usize {
        let inputs: Vec<usize> = match i {
            0 => vec![],
            _ if i % 7 == 0 => vec![i - 1, i / 2],
            _ => vec![i - 1],
        };
        nodes.push(node(Fake::new(&w, &format!("v{i}"), 1), &inputs));
    }
    // A wide fan too: 1,000 leaves feeding one join.
    let first_leaf = nodes.len();
    for i in 0..1000 {
        nodes.push(node(Fake::new(&w, &format!("leaf{i}"), 1), &[]));
    }
    let leaves: Vec<usize> = (first_leaf..nodes.len()).collect();
    nodes.push(node(Fake::new(&w, "join", 0), &leaves));
    let join = nodes.len() - 1;
    let out = run(&nodes, &[9_999, join], &cache, jobs(4), &quiet).unwrap();
    assert_eq!(*out[1], 1000);
    assert_eq!(w.total_runs(), 11_001);
    run(&nodes, &[9_999, join], &cache, jobs(4), &quiet).unwrap();
    assert_eq!(w.total_runs(), 11_001);
}
