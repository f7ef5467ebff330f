//! One stage being lowered: its state (filesystem vertex, image config,
//! SHELL, ARGs in scope), FROM, ONBUILD triggers of the base, and the
//! dispatch of each instruction to its family.

use bake_solver::ir::{ContainerConfig, History, ImageConfig, Platform, VertexId};

use super::args::ArgValue;
use super::{lookup_args, Lowerer};
use crate::ast::{self, Instruction, Kind};
use crate::error::{Error, ErrorKind, Span};
use crate::expand;

/// Docker's default PATH, which BuildKit writes into a scratch stage's config.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A stage as declared.
#[derive(Clone, Debug)]
pub(crate) struct StageDecl<'a> {
    /// 0-based stage number.
    pub index: usize,
    /// `AS name`, lower-cased.
    pub alias: Option<String>,
    /// The FROM instruction.
    pub from_ins: &'a Instruction,
    /// Its arguments.
    pub from: &'a ast::From,
    /// The instructions after FROM, up to the next FROM.
    pub body: &'a [Instruction],
}

impl StageDecl<'_> {
    /// `build` or `stage-0`, as BuildKit shows it.
    pub fn display_name(&self) -> String {
        self.alias
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

/// The state of the stage being lowered.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub index: usize,
    pub name: String,
    /// 1-based step (FROM is 1) and the number of steps, for vertex names.
    pub step: usize,
    pub total: usize,
    /// The current filesystem; `None` while a scratch stage is still empty.
    pub vertex: Option<VertexId>,
    pub config: ImageConfig,
    /// SHELL for shell-form commands.
    pub shell: Vec<String>,
    /// CMD was set in this stage (so ENTRYPOINT keeps it).
    pub cmd_set: bool,
    /// ARGs in scope, in declaration order.
    pub args: Vec<(String, ArgValue)>,
    pub platform: Platform,
}

impl Stage {
    /// The container config, created if the base had none.
    pub fn cc(&mut self) -> &mut ContainerConfig {
        self.config
            .config
            .get_or_insert_with(ContainerConfig::default)
    }

    /// The value of ENV `name`.
    pub fn env(&self, name: &str) -> Option<String> {
        let env = &self.config.config.as_ref()?.env;
        env.iter().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| v.to_string())
        })
    }

    /// Expansion lookup: ENV first, then ARGs.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.env(name).or_else(|| lookup_args(&self.args, name))
    }

    /// Sets ENV `key`, replacing an earlier value in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        let env = &mut self.cc().env;
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }

    /// ARGs with a value that no ENV overrides.
    pub fn visible_args(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, value) in &self.args {
            if let Some(v) = value {
                if self.env(name).is_none() {
                    out.retain(|(n, _)| n != name);
                    out.push((name.clone(), v.clone()));
                }
            }
        }
        out
    }

    /// Absolute working directory.
    pub fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_string())
    }

    /// USER, or empty for root.
    pub fn user(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }

    /// Records a history entry.
    pub fn history(&mut self, created_by: String, empty_layer: bool) {
        let author = self.config.author.clone();
        self.config.history.push(History {
            created: None,
            created_by: Some(created_by),
            author,
            comment: None,
            empty_layer,
        });
    }

    /// `[name n/m] TEXT` for the current step.
    pub fn vertex_name(&self, text: &str) -> String {
        format!("[{} {}/{}] {}", self.name, self.step, self.total, text)
    }
}

/// The instruction as shown in progress: keyword upper-cased, the rest as
/// written.
pub(crate) fn display(ins: &Instruction) -> String {
    let kw = ins.kind.keyword();
    if ins.text.len() > ins.keyword.len() {
        format!("{kw}{}", &ins.text[ins.keyword.len()..])
    } else {
        kw.to_string()
    }
}

/// The config of a stage that starts from scratch, as BuildKit makes it.
fn scratch_config(platform: &Platform) -> ImageConfig {
    ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(ContainerConfig {
            env: vec![format!("PATH={DEFAULT_PATH}")],
            working_dir: Some("/".to_string()),
            ..ContainerConfig::default()
        }),
        ..ImageConfig::default()
    }
}

/// `os/arch[/variant]`.
fn parse_platform(value: &str) -> Option<Platform> {
    let parts: Vec<&str> = value.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Some(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        }),
        _ => None,
    }
}

impl Lowerer<'_> {
    /// Expands `text` in the stage's scope; errors point at `span`.
    pub fn expand(&self, st: &Stage, text: &str, span: &Span) -> Result<String, Error> {
        expand::word(text, self.df.directives.escape, &|n| {
            self.lookup_var(st, n, span.start)
        })
        .map_err(|e| {
            self.src
                .error(ErrorKind::Expansion, span.clone(), e.to_string())
        })
    }

    /// The value of `name` in the stage's scope; a name that is neither
    /// set nor declared is reported as BuildKit's `UndefinedVar` (once per
    /// line), with a close name as a suggestion.
    pub fn lookup_var(&self, st: &Stage, name: &str, at: usize) -> Option<String> {
        let value = st.lookup(name);
        let declared = st.args.iter().any(|(n, _)| n == name);
        // BuildKit never reports these: they are not environment variables.
        let special = name == "SOURCE_DATE_EPOCH" || name.starts_with("BUILDKIT_");
        if value.is_none() && !declared && !special {
            let env = st.config.config.as_ref().map(|c| &c.env);
            let env_keys = env
                .into_iter()
                .flatten()
                .map(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k));
            let options: Vec<&str> = env_keys
                .chain(st.args.iter().map(|(n, _)| n.as_str()))
                .collect();
            let mut message = format!("Usage of undefined variable '${name}'");
            if let Some(s) = crate::lint::suggest(name, options.into_iter()) {
                message.push_str(&format!(" (did you mean ${s}?)"));
            }
            let w = self.src.warning("UndefinedVar", Some(at), message);
            let mut lints = self.lints.borrow_mut();
            if !lints
                .iter()
                .any(|o| o.line == w.line && o.message == w.message)
            {
                lints.push(w);
            }
        }
        value
    }

    /// Expands with the global (FROM-line) scope.
    fn expand_meta(&self, text: &str, span: &Span) -> Result<String, Error> {
        expand::word(text, self.df.directives.escape, &|n| self.meta.lookup(n)).map_err(|e| {
            self.src
                .error(ErrorKind::Expansion, span.clone(), e.to_string())
        })
    }

    /// FROM: the base (scratch, an earlier stage or an image) and its config.
    pub(super) fn begin_stage(&mut self, decl: &StageDecl<'_>) -> Result<Stage, Error> {
        let from = decl.from;
        let platform = match &from.platform {
            Some(flag) => {
                let raw = flag.value.clone().unwrap_or_default();
                let value = self.expand_meta(&raw, &flag.span)?;
                parse_platform(&value).ok_or_else(|| {
                    self.src.error(
                        ErrorKind::InvalidValue,
                        flag.span.clone(),
                        format!("invalid platform \"{value}\": expected os/arch[/variant]"),
                    )
                })?
            }
            None => self.opts.platform.clone(),
        };
        let base = self.expand_meta(&from.image.text, &from.image.span)?;
        if base.is_empty() {
            return Err(self.src.error(
                ErrorKind::Stage,
                from.image.span.clone(),
                "base name (".to_string() + &from.image.text + ") should not be blank",
            ));
        }
        let name = decl.display_name();
        let total = decl.body.len() + 1;
        let earlier = self.stage_by_name(&base).filter(|&i| i < decl.index);
        let (vertex, config) = if let Some(i) = earlier {
            let r = self.stage(i, Some(from.image.span.clone()))?;
            (r.vertex, r.config)
        } else if base.eq_ignore_ascii_case("scratch") {
            (None, scratch_config(&platform))
        } else {
            let label = format!("[{name} 1/{total}] FROM");
            let (v, img) = self.image(&base, &platform, from.image.span.clone(), |img| {
                format!("{label} {}", img.reference)
            })?;
            if let Some(message) = crate::lint::platform::mismatch(&base, &img.config, &platform) {
                let w = self.src.warning(
                    crate::lint::platform::RULE,
                    Some(from.image.span.start),
                    message,
                );
                self.lints.borrow_mut().push(w);
            }
            let mut config = img.config.clone();
            config.created = None;
            config.rootfs.diff_ids.clear();
            if config.config.is_none() {
                config.config = Some(ContainerConfig::default());
            }
            (Some(v), config)
        };
        let shell = config
            .config
            .as_ref()
            .map(|c| c.shell.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string()]);
        Ok(Stage {
            index: decl.index,
            name,
            step: 2,
            total,
            vertex,
            config,
            shell,
            cmd_set: false,
            args: Vec::new(),
            platform,
        })
    }

    /// The base's ONBUILD triggers, parsed; they run before the stage's
    /// own instructions and are not inherited further.
    pub(super) fn take_onbuild_triggers(
        &mut self,
        st: &mut Stage,
        decl: &StageDecl<'_>,
    ) -> Result<Vec<Instruction>, Error> {
        let Some(cc) = st.config.config.as_mut() else {
            return Ok(Vec::new());
        };
        let triggers = std::mem::take(&mut cc.on_build);
        let mut out = Vec::new();
        for t in triggers {
            // Parsed as a one-line Dockerfile of its own; errors point at FROM.
            let fake = format!("{t}\n");
            let parsed = crate::parse(&fake, "ONBUILD trigger").map_err(|e| {
                self.src.error(
                    ErrorKind::Syntax,
                    decl.from_ins.span.clone(),
                    format!(
                        "invalid ONBUILD trigger \"{t}\" in the base image: {}",
                        e.message()
                    ),
                )
            })?;
            for mut ins in parsed.instructions {
                if matches!(
                    ins.kind,
                    Kind::From(_) | Kind::Onbuild(_) | Kind::Maintainer(_)
                ) {
                    return Err(self.src.error(
                        ErrorKind::Syntax,
                        decl.from_ins.span.clone(),
                        format!("{} isn't allowed as an ONBUILD trigger", ins.kind.keyword()),
                    ));
                }
                // Positions of the trigger refer to the FROM line.
                ins.span = decl.from_ins.span.clone();
                ins.line = decl.from_ins.line;
                ins.column = decl.from_ins.column;
                relocate(&mut ins.kind, &decl.from_ins.span);
                out.push(ins);
            }
        }
        Ok(out)
    }

    /// Lowers one instruction into the stage.
    pub(super) fn dispatch(&mut self, st: &mut Stage, ins: &Instruction) -> Result<(), Error> {
        match &ins.kind {
            Kind::Run(run) => self.run(st, ins, run),
            Kind::Copy(copy) => self.copy(st, ins, copy),
            Kind::Add(add) => self.add(st, ins, add),
            Kind::Workdir(w) => self.workdir(st, ins, w),
            Kind::From(_) => unreachable!("FROM starts a stage"),
            _ => self.config_instruction(st, ins),
        }
    }
}

/// Points every span inside a trigger's kind at `span` (its text came from
/// an image config, not from this Dockerfile).
fn relocate(kind: &mut Kind, span: &Span) {
    let fix_word = |w: &mut ast::Word| w.span = span.clone();
    let fix_flag = |f: &mut Option<ast::Flag>| {
        if let Some(f) = f {
            f.span = span.clone();
        }
    };
    match kind {
        Kind::Copy(c) => {
            c.paths.sources.iter_mut().for_each(fix_word);
            fix_word(&mut c.paths.dest);
            fix_flag(&mut c.from);
            fix_flag(&mut c.chown);
            fix_flag(&mut c.chmod);
            c.exclude.iter_mut().for_each(|f| f.span = span.clone());
            c.paths
                .heredocs
                .iter_mut()
                .for_each(|h| h.span = span.clone());
        }
        Kind::Add(a) => {
            a.paths.sources.iter_mut().for_each(fix_word);
            fix_word(&mut a.paths.dest);
            fix_flag(&mut a.chown);
            fix_flag(&mut a.chmod);
            fix_flag(&mut a.checksum);
            a.exclude.iter_mut().for_each(|f| f.span = span.clone());
        }
        Kind::Run(r) => {
            r.mounts.iter_mut().for_each(|f| f.span = span.clone());
            fix_flag(&mut r.network);
            fix_flag(&mut r.security);
        }
        Kind::Expose(ws) | Kind::Volume(ws) => ws.iter_mut().for_each(fix_word),
        Kind::User(w) | Kind::Workdir(w) | Kind::Stopsignal(w) => fix_word(w),
        Kind::Env(kvs) | Kind::Label(kvs) => kvs.iter_mut().for_each(|kv| kv.span = span.clone()),
        Kind::Arg(ds) => ds.iter_mut().for_each(|d| d.span = span.clone()),
        Kind::Healthcheck(ast::Healthcheck::Check { flags, .. }) => {
            flags.iter_mut().for_each(|f| f.span = span.clone())
        }
        _ => {}
    }
}
