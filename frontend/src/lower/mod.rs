//! AST → IR: stages, ARG scoping, the image config, and one vertex per
//! filesystem-changing instruction.
//!
//! Only the stages the target needs are lowered (and only their base
//! images resolved): stages are lowered on demand, recursively, when the
//! target or a stage it needs names them (`FROM stage`, `COPY --from`,
//! `RUN --mount=from=`). Vertices are pushed in that order, which keeps the
//! graph topologically sorted.

mod args;
mod chmod;
mod config;
mod copy;
mod path;
mod run;
mod stage;

use std::collections::{BTreeMap, BTreeSet};

use bake_solver::ir::{
    Definition, Digest, Graph, ImageConfig, Op, Origin, Platform, Source as IrSource, Vertex,
    VertexId,
};

use crate::ast::{self, Dockerfile, Instruction, Kind};
use crate::error::{Error, ErrorKind, Source, Span, Warning};

use args::is_predefined;
pub(crate) use args::platform_args;
use args::{ArgValue, MetaArgs};
use stage::StageDecl;

/// What the build was asked to do (the `bake build` flags that matter to
/// the frontend).
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The Dockerfile's name as the user gave it (for messages and
    /// vertex origins).
    pub file: String,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: a stage name; `None` builds the last stage.
    pub target: Option<String>,
    /// `--platform`: the target platform.
    pub platform: Platform,
    /// `.dockerignore` patterns, in file order.
    pub dockerignore: Vec<String>,
    /// `--no-cache`.
    pub no_cache: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            file: "Dockerfile".to_string(),
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            dockerignore: Vec::new(),
            no_cache: false,
        }
    }
}

/// A base image, resolved: what `FROM`, `COPY --from=image` and
/// `RUN --mount=from=image` refer to.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedImage {
    /// The normalised reference (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// The image id (config digest): the cache key of the image source.
    pub image_id: Digest,
    /// Its config: the starting point of a stage's config.
    pub config: ImageConfig,
}

/// Resolves image references to image ids and configs (the cli looks in
/// the local store and pulls what is missing). Kept behind a trait so the
/// frontend stays free of registries and tests can fake it.
pub trait ImageResolver {
    /// Resolves `reference` (as written, after ARG expansion) for
    /// `platform`.
    ///
    /// # Errors
    /// A message saying why the image cannot be had.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String>;
}

/// Lowers a parsed Dockerfile to a [`Definition`] for `opts`.
///
/// The warnings include the parser's (empty continuation lines) and the
/// lowering's (unused build args, lint rules).
///
/// # Errors
/// Stage errors (unknown target, bad `--from`, cycles), expansion errors,
/// invalid values, unsupported features, and base images the resolver
/// cannot resolve.
pub fn lower(
    df: &Dockerfile,
    opts: &BuildOptions,
    resolver: &dyn ImageResolver,
) -> Result<(Definition, Vec<Warning>), Error> {
    let src = Source {
        file: &df.file,
        text: &df.source,
    };
    let checks = crate::lint::config(df, opts)?;
    let mut lowerer = Lowerer::new(df, src, opts, resolver)?;
    let target = lowerer.target_stage()?;
    let result = lowerer.stage(target, None)?;
    let vertex = match result.vertex {
        Some(v) => v,
        None => lowerer.scratch(),
    };
    lowerer.unused_build_args();
    let mut warnings = crate::lint::check(df, opts);
    warnings.append(&mut lowerer.warnings);
    warnings.append(&mut lowerer.lints.borrow_mut());
    let warnings = crate::lint::select(&checks, warnings);
    Ok((
        Definition {
            graph: lowerer.graph,
            target: vertex,
            config: result.config,
        },
        warnings,
    ))
}

/// What a lowered stage leaves behind.
#[derive(Clone, Debug)]
pub(crate) struct StageResult {
    /// Its filesystem; `None` for a scratch stage that changed nothing.
    pub vertex: Option<VertexId>,
    /// Its image config.
    pub config: ImageConfig,
}

/// The lowering of one Dockerfile.
pub(crate) struct Lowerer<'a> {
    pub df: &'a Dockerfile,
    pub src: Source<'a>,
    pub opts: &'a BuildOptions,
    resolver: &'a dyn ImageResolver,
    pub graph: Graph,
    pub stages: Vec<StageDecl<'a>>,
    pub meta: MetaArgs,
    results: Vec<Option<StageResult>>,
    visiting: Vec<bool>,
    context: Option<VertexId>,
    scratch: Option<VertexId>,
    images: BTreeMap<(String, String), (VertexId, ResolvedImage)>,
    pub warnings: Vec<Warning>,
    /// Lint warnings found while expanding (`UndefinedVar`), which happens
    /// behind shared references.
    pub lints: std::cell::RefCell<Vec<Warning>>,
    /// Build args some ARG declared (for the unused-build-arg warning).
    pub consumed: BTreeSet<String>,
}

impl<'a> Lowerer<'a> {
    fn new(
        df: &'a Dockerfile,
        src: Source<'a>,
        opts: &'a BuildOptions,
        resolver: &'a dyn ImageResolver,
    ) -> Result<Self, Error> {
        let mut lowerer = Lowerer {
            df,
            src,
            opts,
            resolver,
            graph: Graph::default(),
            stages: Vec::new(),
            meta: MetaArgs::new(opts),
            results: Vec::new(),
            visiting: Vec::new(),
            context: None,
            scratch: None,
            images: BTreeMap::new(),
            warnings: Vec::new(),
            lints: std::cell::RefCell::new(Vec::new()),
            consumed: BTreeSet::new(),
        };
        lowerer.split_stages()?;
        Ok(lowerer)
    }

    /// Global ARGs, then one [`StageDecl`] per FROM.
    fn split_stages(&mut self) -> Result<(), Error> {
        let instructions = &self.df.instructions;
        let first_from = instructions
            .iter()
            .position(|i| matches!(i.kind, Kind::From(_)));
        let Some(first_from) = first_from else {
            return Err(self.src.error_at_file(
                ErrorKind::Stage,
                "the Dockerfile has no FROM instruction (no stages to build)",
            ));
        };
        for ins in &instructions[..first_from] {
            let Kind::Arg(decls) = &ins.kind else {
                return Err(self.src.error(
                    ErrorKind::Stage,
                    ins.span.clone(),
                    format!(
                        "{} before the first FROM: no build stage in current context",
                        ins.kind.keyword()
                    ),
                ));
            };
            for decl in decls {
                self.meta.declare(
                    &self.src,
                    self.df.directives.escape,
                    decl,
                    &mut self.consumed,
                )?;
            }
        }
        let mut start = first_from;
        while start < instructions.len() {
            let end = instructions[start + 1..]
                .iter()
                .position(|i| matches!(i.kind, Kind::From(_)))
                .map_or(instructions.len(), |p| start + 1 + p);
            let Kind::From(from) = &instructions[start].kind else {
                unreachable!("stages start at FROM")
            };
            let index = self.stages.len();
            let alias = match &from.alias {
                Some(a) => Some(self.stage_name(a, index)?),
                None => None,
            };
            self.stages.push(StageDecl {
                index,
                alias,
                from_ins: &instructions[start],
                from,
                body: &instructions[start + 1..end],
            });
            start = end;
        }
        self.results = vec![None; self.stages.len()];
        self.visiting = vec![false; self.stages.len()];
        Ok(())
    }

    /// Validates a stage name (BuildKit's rule) and lower-cases it.
    fn stage_name(&self, word: &ast::Word, index: usize) -> Result<String, Error> {
        let name = word.text.to_ascii_lowercase();
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !valid {
            return Err(self.src.error(
                ErrorKind::Stage,
                word.span.clone(),
                format!("invalid name for build stage: \"{}\", name can't start with a number or contain symbols", word.text),
            ));
        }
        if self.stages[..index]
            .iter()
            .any(|s| s.alias.as_deref() == Some(&name))
        {
            return Err(self.src.error(
                ErrorKind::Stage,
                word.span.clone(),
                format!("duplicate stage name \"{}\"", word.text),
            ));
        }
        Ok(name)
    }

    fn target_stage(&self) -> Result<usize, Error> {
        match &self.opts.target {
            None => Ok(self.stages.len() - 1),
            Some(t) => {
                let t = t.to_ascii_lowercase();
                self.stages
                    .iter()
                    .position(|s| s.alias.as_deref() == Some(t.as_str()))
                    .ok_or_else(|| {
                        self.src.error_at_file(
                            ErrorKind::Stage,
                            format!("target stage \"{t}\" could not be found"),
                        )
                    })
            }
        }
    }

    /// The stage named `name` (case-insensitive), if any.
    pub fn stage_by_name(&self, name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.alias.as_deref() == Some(name.as_str()))
    }

    /// Lowers stage `index` (once), for a reference at `span` (for cycle errors).
    pub fn stage(&mut self, index: usize, span: Option<Span>) -> Result<StageResult, Error> {
        if let Some(r) = &self.results[index] {
            return Ok(r.clone());
        }
        if self.visiting[index] {
            let name = self.stages[index].display_name();
            let span = span.unwrap_or_else(|| self.stages[index].from_ins.span.clone());
            return Err(self.src.error(
                ErrorKind::Stage,
                span,
                format!("circular dependency detected on stage: {name}"),
            ));
        }
        self.visiting[index] = true;
        let result = self.lower_stage(index)?;
        self.visiting[index] = false;
        self.results[index] = Some(result.clone());
        Ok(result)
    }

    fn lower_stage(&mut self, index: usize) -> Result<StageResult, Error> {
        let decl = self.stages[index].clone();
        let mut st = self.begin_stage(&decl)?;
        let triggers = self.take_onbuild_triggers(&mut st, &decl)?;
        for ins in &triggers {
            self.dispatch(&mut st, ins)?;
        }
        for ins in decl.body {
            self.dispatch(&mut st, ins)?;
            st.step += 1;
        }
        Ok(StageResult {
            vertex: st.vertex,
            config: st.config,
        })
    }

    /// Appends a vertex.
    pub fn push(
        &mut self,
        op: Op,
        inputs: Vec<VertexId>,
        name: String,
        origin: Option<&Instruction>,
    ) -> VertexId {
        let ignore_cache = self.opts.no_cache && !matches!(op, Op::Source(_));
        self.graph.push(Vertex {
            op,
            inputs,
            name,
            origin: origin.map(|i| Origin {
                file: self.df.file.clone(),
                line: i.line,
                column: i.column,
            }),
            ignore_cache,
        })
    }

    /// The build context (one vertex shared by every consumer).
    pub fn context(&mut self) -> VertexId {
        if let Some(v) = self.context {
            return v;
        }
        let op = Op::Source(IrSource::Local {
            name: "context".to_string(),
            exclude: self.opts.dockerignore.clone(),
        });
        let v = self.push(
            op,
            Vec::new(),
            "[internal] load build context".to_string(),
            None,
        );
        self.context = Some(v);
        v
    }

    /// The empty filesystem (one shared vertex).
    pub fn scratch(&mut self) -> VertexId {
        if let Some(v) = self.scratch {
            return v;
        }
        let v = self.push(
            Op::Source(IrSource::Scratch),
            Vec::new(),
            "[internal] scratch".to_string(),
            None,
        );
        self.scratch = Some(v);
        v
    }

    /// Resolves an image and returns its (shared) source vertex.
    pub fn image(
        &mut self,
        reference: &str,
        platform: &Platform,
        span: Span,
        name: impl FnOnce(&ResolvedImage) -> String,
    ) -> Result<(VertexId, ResolvedImage), Error> {
        let key = (reference.to_string(), platform_string(platform));
        if let Some((v, img)) = self.images.get(&key) {
            return Ok((*v, img.clone()));
        }
        let img = self.resolver.resolve(reference, platform).map_err(|e| {
            self.src.error(
                ErrorKind::Resolve,
                span,
                format!("failed to resolve image \"{reference}\": {e}"),
            )
        })?;
        let op = Op::Source(IrSource::Image {
            reference: img.reference.clone(),
            image_id: img.image_id.clone(),
            platform: platform.clone(),
        });
        let v = self.push(op, Vec::new(), name(&img), None);
        self.images.insert(key, (v, img.clone()));
        Ok((v, img))
    }

    /// The filesystem named by `--from=` / `from=`: a stage index, a stage
    /// name, or an image reference (already expanded).
    pub fn named_source(
        &mut self,
        current: usize,
        value: &str,
        span: Span,
        platform: &Platform,
    ) -> Result<VertexId, Error> {
        if let Ok(n) = value.parse::<usize>() {
            if n >= current {
                return Err(self
                    .src
                    .error(
                        ErrorKind::Stage,
                        span,
                        format!("invalid from flag value {n}: index out of bounds"),
                    )
                    .with_help(format!(
                        "--from=<index> names an earlier stage; this is stage {current}"
                    )));
            }
            let r = self.stage(n, Some(span))?;
            return Ok(r.vertex.unwrap_or_else(|| self.scratch()));
        }
        if let Some(i) = self.stage_by_name(value) {
            if i == current {
                return Err(self.src.error(
                    ErrorKind::Stage,
                    span,
                    format!("circular dependency detected on stage: {value}"),
                ));
            }
            let r = self.stage(i, Some(span))?;
            return Ok(r.vertex.unwrap_or_else(|| self.scratch()));
        }
        if value.eq_ignore_ascii_case("scratch") {
            return Ok(self.scratch());
        }
        let (v, _) = self.image(value, platform, span, |img| {
            format!("[internal] load image {}", img.reference)
        })?;
        Ok(v)
    }

    fn unused_build_args(&mut self) {
        for name in self.opts.build_args.keys() {
            if self.consumed.contains(name)
                || is_predefined(name)
                || name == crate::lint::CHECK_BUILD_ARG
            {
                continue;
            }
            self.warnings.push(self.src.warning(
                "UnusedBuildArg",
                None,
                format!("build-arg \"{name}\" was not consumed by any ARG"),
            ));
        }
    }
}

/// `linux/amd64[/v7]`.
pub(crate) fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The values of an ARG scope, for expansion.
pub(crate) fn lookup_args(args: &[(String, ArgValue)], name: &str) -> Option<String> {
    args.iter()
        .rev()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.clone())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
