//! The [`Solver`]: adapts the store and the runner to the generic
//! scheduler.

use std::sync::{Arc, OnceLock};

use bake_store::{CacheRecord, ChainId, Layer, Store};

use crate::build_claim::{Claimed, Claims};
use crate::cache_key;
use crate::context_hash::{selection_key, StatCache};
use crate::digest::{op_digest, Key};
use crate::dockerignore::Matcher;
use crate::error::Error;
use crate::event::Event;
use crate::ir::{
    self, Copy, Definition, FileAction, Graph, LocalDirs, MountKind, Op, Source, VertexId,
};
use crate::ops::{self, exec, file, git, http, select, source, Value};
use crate::scheduler::{self, Cache, Input, Node, Progress, Settings, Task};

/// How a solve runs.
#[derive(Clone, Debug)]
pub struct SolveOptions {
    /// Vertices run at the same time (at least 1).
    pub jobs: usize,
    /// Never look up the cache (results are still recorded).
    pub no_cache: bool,
    /// `SOURCE_DATE_EPOCH`: clamps layer timestamps.
    pub source_date_epoch: Option<i64>,
    /// `--secret` and `--ssh`: what `RUN --mount=type=secret|ssh` may use.
    /// Never part of a cache key.
    pub secrets: ops::secrets::Secrets,
    /// `--memory`: cgroup limits for each RUN. Never part of a cache key
    /// (a result does not depend on the machine's limits).
    pub run_limits: bake_runner::Limits,
    /// `--cache-from`: imported caches, looked up after the store's own.
    pub remote_caches: crate::remote_cache::RemoteCaches,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            no_cache: false,
            source_date_epoch: None,
            secrets: ops::secrets::Secrets::default(),
            run_limits: bake_runner::Limits::default(),
            remote_caches: crate::remote_cache::RemoteCaches::default(),
        }
    }
}

/// The result of a solve.
#[derive(Clone, Debug, PartialEq)]
pub struct Solved {
    /// The target's chain, bottom first.
    pub layers: Vec<Layer>,
    /// Every cache record the solve used (hit or written), for
    /// `--cache-to`.
    pub records: Vec<bake_store::cache_export::ExportRecord>,
}

/// Solves build definitions against a store.
pub struct Solver {
    store: Arc<Store>,
    opts: SolveOptions,
}

impl Solver {
    /// A solver over `store`.
    pub fn new(store: Arc<Store>, opts: SolveOptions) -> Solver {
        Solver { store, opts }
    }

    /// Builds `def.target` and returns its layers.
    ///
    /// `events` is called from the solver's worker threads.
    ///
    /// # Errors
    /// The first vertex failure ([`Error::Vertex`]) or a malformed
    /// definition.
    pub fn solve(
        &self,
        def: &Definition,
        locals: &LocalDirs,
        events: &(dyn Fn(Event) + Sync),
    ) -> Result<Solved, Error> {
        let graph = &def.graph;
        if def.target.0 >= graph.vertices.len() {
            return Err(Error::InvalidDefinition(format!(
                "target {} of {} vertices",
                def.target.0,
                graph.vertices.len()
            )));
        }
        for (i, v) in graph.vertices.iter().enumerate() {
            if v.inputs.iter().any(|x| x.0 >= i) {
                return Err(Error::InvalidDefinition(format!(
                    "vertex {i} has an input that does not precede it"
                )));
            }
        }
        let stat_cache = StatCache::load(&self.store.stat_cache_file());
        let nodes: Vec<Node<VertexTask<'_>>> = graph
            .vertices
            .iter()
            .enumerate()
            .map(|(i, v)| Node {
                task: VertexTask {
                    solver: self,
                    graph,
                    id: VertexId(i),
                    locals,
                    stat_cache: &stat_cache,
                    events,
                    remote: OnceLock::new(),
                    git: OnceLock::new(),
                },
                inputs: v.inputs.iter().map(|x| x.0).collect(),
            })
            .collect();
        let name = |i: usize| graph.vertices[i].name.clone();
        let observe = |i: usize, p: Progress| {
            let vertex = VertexId(i);
            events(match p {
                Progress::Started => Event::Started {
                    vertex,
                    name: name(i),
                },
                Progress::Cached => Event::Cached {
                    vertex,
                    name: name(i),
                },
                Progress::Done { seconds } => Event::Done { vertex, seconds },
                Progress::Failed { message } => Event::Failed { vertex, message },
            })
        };
        let used = crate::remote_cache::Used::default();
        let claims = Claims::new(&self.store.build_claims_dir());
        let cache = StoreCache {
            store: &self.store,
            lookup: !self.opts.no_cache,
            remote: &self.opts.remote_caches,
            used: &used,
            claims: &claims,
        };
        let settings = Settings {
            jobs: self.opts.jobs.max(1),
        };
        let result = scheduler::run(&nodes, &[def.target.0], &cache, settings, &observe);
        let saved = stat_cache.save();
        let out = result.map_err(|f| Error::Vertex {
            vertex: VertexId(f.node),
            name: name(f.node),
            source: Box::new(f.error),
        })?;
        saved?;
        match out[0].as_ref() {
            Value::Layers(layers) => {
                // An image is its config over snapshots: a target that was
                // a hit in an imported cache is fetched now.
                self.opts
                    .remote_caches
                    .materialize(&self.store, layers)
                    .map_err(|e| Error::Vertex {
                        vertex: def.target,
                        name: name(def.target.0),
                        source: Box::new(e.into()),
                    })?;
                Ok(Solved {
                    layers: layers.clone(),
                    records: used.take(),
                })
            }
            Value::Dir(_) | Value::Remote(_) | Value::Git(_) => Err(Error::InvalidDefinition(
                "the target is a local directory, not a filesystem".into(),
            )),
        }
    }
}

/// The store's cache index as the scheduler's cache. A hit checks that
/// every snapshot of the chain exists (their records only: no layer data
/// is read).
struct StoreCache<'a> {
    store: &'a Store,
    lookup: bool,
    /// Imported caches, asked when the store's own index misses.
    remote: &'a crate::remote_cache::RemoteCaches,
    /// Records this solve used, for `--cache-to`.
    used: &'a crate::remote_cache::Used,
    /// Keys this process is building, so that another bake process on the
    /// same store waits for them instead of building them too.
    claims: &'a Claims,
}

impl StoreCache<'_> {
    /// The store's own record of `key`, or an imported one.
    fn find(&self, key: &Key) -> Option<Vec<Layer>> {
        let local = self.store.cache_get(&key.to_hex()).and_then(|record| {
            ChainId::chain(&record.layers)
                .iter()
                .map(|chain| self.store.snapshot_layer(chain).ok()) // pruned: rebuild
                .collect::<Option<Vec<Layer>>>()
        });
        // An imported hit is lazy: its layers are fetched when needed.
        local.or_else(|| self.remote.lookup(key))
    }
}

impl Cache<Value, ops::Error> for StoreCache<'_> {
    fn get(&self, key: &Key) -> Result<Option<Value>, ops::Error> {
        if !self.lookup {
            return Ok(None);
        }
        let layers = match self.find(key) {
            Some(layers) => layers,
            None => {
                // A miss: claim the key. If another bake process was
                // building it, its result is likely recorded by now.
                let hex = key.to_hex();
                if self.claims.claim(&hex, &|| {})? == Claimed::Free {
                    return Ok(None);
                }
                match self.find(key) {
                    Some(layers) => {
                        self.claims.release(&hex);
                        layers
                    }
                    None => return Ok(None),
                }
            }
        };
        self.used.add(key, &layers);
        Ok(Some(Value::Layers(layers)))
    }

    fn put(&self, key: &Key, output: &Value) -> Result<(), ops::Error> {
        if let Value::Layers(layers) = output {
            let record = CacheRecord {
                layers: layers.iter().map(|l| l.diff_id.clone()).collect(),
                created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            self.store.cache_put(&key.to_hex(), &record)?;
            self.claims.release(&key.to_hex());
            self.used.add(key, layers);
        }
        Ok(())
    }
}

struct VertexTask<'a> {
    solver: &'a Solver,
    graph: &'a Graph,
    id: VertexId,
    locals: &'a LocalDirs,
    stat_cache: &'a StatCache,
    events: &'a (dyn Fn(Event) + Sync),
    /// An `Http` source's download, made by `cache_key` and handed out by
    /// `run`.
    remote: OnceLock<Arc<http::Remote>>,
    /// A `Git` source's checkout, resolved by `cache_key`, cloned by the
    /// copy that reads it.
    git: OnceLock<Arc<git::Checkout>>,
}

impl VertexTask<'_> {
    fn vertex(&self) -> &ir::Vertex {
        self.graph.get(self.id)
    }

    /// The download of this `Http` source vertex.
    fn remote(
        &self,
        url: &str,
        filename: &str,
        checksum: Option<&str>,
    ) -> Result<Arc<http::Remote>, ops::Error> {
        if let Some(r) = self.remote.get() {
            return Ok(Arc::clone(r));
        }
        let r = http::Remote::new(Arc::clone(&self.solver.store), url, filename, checksum)?;
        Ok(Arc::clone(self.remote.get_or_init(|| Arc::new(r))))
    }

    /// The checkout of this `Git` source vertex.
    fn git(&self, source: &Source) -> Result<Arc<git::Checkout>, ops::Error> {
        if let Some(g) = self.git.get() {
            return Ok(Arc::clone(g));
        }
        let spec = git::Spec::of(source)
            .ok_or_else(|| ops::Error::Unsupported(format!("{source:?} is not a git source")))?;
        let g = git::Checkout::new(Arc::clone(&self.solver.store), spec)?;
        Ok(Arc::clone(self.git.get_or_init(|| Arc::new(g))))
    }

    /// `.dockerignore` patterns of input `i`, if it is a local source.
    fn local_exclude(&self, i: usize) -> &[String] {
        let input = self.vertex().inputs[i];
        match &self.graph.get(input).op {
            Op::Source(Source::Local { exclude, .. }) => exclude,
            _ => &[],
        }
    }

    /// The content key of local input `i` as the copies in this vertex
    /// read it.
    fn local_key(
        &self,
        i: usize,
        dir: &std::path::Path,
        copies: &[Copy],
    ) -> Result<Key, ops::Error> {
        let ignore = Matcher::new(self.local_exclude(i))?;
        let tree = select::Tree {
            root: dir,
            ignore: &ignore,
        };
        let mut parts = Vec::with_capacity(copies.len());
        for c in copies {
            let items = select::select(&tree, c)?;
            parts.push(selection_key(&items, c.mode.is_none(), self.stat_cache)?);
        }
        Ok(cache_key::combine(&parts))
    }
}

impl Task for VertexTask<'_> {
    type Output = Value;
    type Error = ops::Error;

    fn definition(&self) -> Key {
        op_digest(&self.vertex().op)
    }

    fn cacheable(&self) -> bool {
        !self.vertex().ignore_cache && matches!(self.vertex().op, Op::Exec(_) | Op::File(_))
    }

    fn cache_key(&self, inputs: &[Input<'_, Value>]) -> Result<Key, ops::Error> {
        let op = &self.vertex().op;
        let mut contents = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let Value::Dir(dir) = input.output else {
                contents.push(*input.key);
                continue;
            };
            let copies: Vec<Copy> = match op {
                Op::File(f) => f
                    .actions
                    .iter()
                    .filter_map(|a| match a {
                        FileAction::Copy(c) if c.source == i => Some(c.clone()),
                        _ => None,
                    })
                    .collect(),
                Op::Exec(e) => e
                    .mounts
                    .iter()
                    .filter_map(|m| match &m.kind {
                        MountKind::Bind { input, source, .. } if *input == i => {
                            Some(Copy::whole(source))
                        }
                        _ => None,
                    })
                    .collect(),
                Op::Source(_) => Vec::new(),
            };
            contents.push(self.local_key(i, dir, &copies)?);
        }
        Ok(match op {
            Op::Source(Source::Scratch) => cache_key::scratch(),
            Op::Source(Source::Image { image_id, .. }) => cache_key::image(image_id),
            Op::Source(Source::Local { name, .. }) => cache_key::local(name),
            Op::Source(Source::Http {
                url,
                checksum,
                filename,
            }) => self.remote(url, filename, checksum.as_deref())?.key()?,
            Op::Source(s @ Source::Git { .. }) => self.git(s)?.key()?,
            Op::Exec(_) | Op::File(_) => cache_key::cache_key(&self.definition(), &contents),
        })
    }

    fn output_key(&self, key: &Key, output: &Value) -> Key {
        match (&self.vertex().op, output) {
            // Content-addressed: dependents key on the layers this vertex
            // produced, not on what it was asked to do, so a vertex that ran
            // again with the same result keeps them cached.
            (Op::Exec(_) | Op::File(_), Value::Layers(layers)) => cache_key::layers(layers),
            _ => *key,
        }
    }

    fn run(&self, _key: &Key, inputs: &[Input<'_, Value>]) -> Result<Value, ops::Error> {
        let store = &self.solver.store;
        // Inputs that were hits in an imported cache get their files now.
        for input in inputs {
            if let Value::Layers(layers) = input.output {
                self.solver.opts.remote_caches.materialize(store, layers)?;
            }
        }
        let epoch = self.solver.opts.source_date_epoch;
        match &self.vertex().op {
            Op::Source(Source::Http {
                url,
                checksum,
                filename,
            }) => Ok(Value::Remote(self.remote(
                url,
                filename,
                checksum.as_deref(),
            )?)),
            Op::Source(s @ Source::Git { .. }) => Ok(Value::Git(self.git(s)?)),
            Op::Source(s) => source::run(store, s, self.locals),
            Op::Exec(e) => {
                let values: Vec<&Value> = inputs.iter().map(|i| i.output).collect();
                let vertex = self.id;
                let mut log = |stream, data: &[u8]| {
                    (self.events)(Event::Log {
                        vertex,
                        stream,
                        data: data.to_vec(),
                    })
                };
                Ok(Value::Layers(exec::run(
                    store,
                    e,
                    &values,
                    epoch,
                    &self.solver.opts.secrets,
                    &self.solver.opts.run_limits,
                    &mut log,
                )?))
            }
            Op::File(f) => {
                let sources = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, input)| {
                        Ok(match input.output {
                            Value::Dir(d) => file::CopySource::Local {
                                dir: d,
                                exclude: self.local_exclude(i),
                            },
                            Value::Remote(r) => file::CopySource::Local {
                                dir: r.dir()?,
                                exclude: &[],
                            },
                            Value::Git(g) => file::CopySource::Local {
                                dir: g.dir()?,
                                exclude: &[],
                            },
                            Value::Layers(l) => file::CopySource::Layers(l),
                        })
                    })
                    .collect::<Result<Vec<_>, ops::Error>>()?;
                Ok(Value::Layers(file::run(store, f, &sources, epoch)?))
            }
        }
    }
}

#[cfg(test)]
#[path = "solve_tests.rs"]
mod tests;
