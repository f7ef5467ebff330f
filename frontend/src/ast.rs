//! The typed Dockerfile: one variant per instruction, every argument and
//! flag with its byte span in the source.
//!
//! Arguments are kept *as written* (quotes, `$VAR`s and escapes intact):
//! expansion depends on the stage's ENV and ARGs, which only lowering
//! knows, and differs per instruction (RUN text is never expanded).

use serde::Serialize;

use crate::directives::Directives;
use crate::error::{Span, Warning};

/// A parsed Dockerfile.
#[derive(Clone, Debug, Serialize)]
pub struct Dockerfile {
    /// The file name as the user gave it (for positions).
    pub file: String,
    /// The full source text (errors quote it).
    #[serde(skip)]
    pub source: String,
    /// Parser directives.
    pub directives: Directives,
    /// The instructions, in order.
    pub instructions: Vec<Instruction>,
    /// Parser warnings (empty continuation lines, …).
    #[serde(skip)]
    pub warnings: Vec<Warning>,
}

/// One instruction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Instruction {
    /// The keyword as written (`copy`, `Run`); matched case-insensitively.
    pub keyword: String,
    /// The whole instruction line as written (continuations joined, no
    /// heredoc bodies), from the keyword on.
    pub text: String,
    /// The arguments after the keyword and flags, as written, continuations
    /// joined, trimmed (what ONBUILD records and progress names show).
    pub args_text: String,
    /// From the keyword to the end of the instruction (heredocs included).
    pub span: Span,
    /// 1-based line of the keyword.
    pub line: usize,
    /// 1-based column of the keyword.
    pub column: usize,
    /// What the instruction is.
    pub kind: Kind,
}

/// A word as written, with its span.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Word {
    /// The raw text (not expanded, quotes kept).
    pub text: String,
    /// Where it is.
    pub span: Span,
}

/// A `--name[=value]` flag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// Name without the dashes.
    pub name: String,
    /// Value with surrounding quotes removed; `None` for a bare `--link`.
    pub value: Option<String>,
    /// Where it is.
    pub span: Span,
}

/// RUN, CMD and ENTRYPOINT arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `["a", "b"]`: run as is.
    Exec(Vec<String>),
    /// Anything else: wrapped in the stage's SHELL.
    Shell(String),
}

/// A heredoc body opened by `<<NAME` in a RUN, COPY or ADD line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter (quotes removed).
    pub name: String,
    /// The raw body lines, each ending in `\n`, tabs kept even for `<<-`
    /// (a shell that reads the heredoc itself does its own stripping).
    pub body: String,
    /// The delimiter was unquoted: COPY/ADD expand `$VAR`s in the body.
    pub expand: bool,
    /// `<<-`.
    pub chomp: bool,
    /// The `<<NAME` marker.
    pub span: Span,
}

impl Heredoc {
    /// The content as delivered: tabs stripped for `<<-`.
    pub fn content(&self) -> String {
        crate::heredoc::content(&self.body, self.chomp)
    }
}

/// A `key=value` of ENV or LABEL, both as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The key (may hold quotes and `$VAR`s).
    pub key: String,
    /// The value (may hold quotes and `$VAR`s).
    pub value: String,
    /// Where the pair is.
    pub span: Span,
}

/// One name of an ARG instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// `=default`, as written.
    pub default: Option<String>,
    /// Where the declaration is.
    pub span: Span,
}

/// The instruction variants.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `FROM [--platform=p] image [AS name]`.
    From(From),
    /// `RUN [--mount …] [--network …] [--security …] command`.
    Run(Run),
    /// `CMD command`.
    Cmd(Command),
    /// `ENTRYPOINT command`.
    Entrypoint(Command),
    /// `LABEL k=v …` (or legacy `LABEL k v`).
    Label(Vec<KeyValue>),
    /// `MAINTAINER name` (deprecated; sets the author).
    Maintainer(String),
    /// `EXPOSE port[/proto] …`.
    Expose(Vec<Word>),
    /// `ENV k=v …` (or legacy `ENV k v`).
    Env(Vec<KeyValue>),
    /// `ADD [flags] src… dest`.
    Add(Add),
    /// `COPY [flags] src… dest`.
    Copy(Copy),
    /// `VOLUME path…` or `VOLUME ["path", …]`.
    Volume(Vec<Word>),
    /// `USER user[:group]`.
    User(Word),
    /// `WORKDIR path`.
    Workdir(Word),
    /// `ARG name[=default] …`.
    Arg(Vec<ArgDecl>),
    /// `ONBUILD instruction`.
    Onbuild(Onbuild),
    /// `STOPSIGNAL signal`.
    Stopsignal(Word),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD command`.
    Healthcheck(Healthcheck),
    /// `SHELL ["exe", "arg", …]`.
    Shell(Vec<String>),
}

/// FROM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct From {
    /// Image reference, `scratch`, or an earlier stage's name.
    pub image: Word,
    /// `AS name`.
    pub alias: Option<Word>,
    /// `--platform`.
    pub platform: Option<Flag>,
}

/// RUN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The command.
    pub command: Command,
    /// Heredocs opened on the line.
    pub heredocs: Vec<Heredoc>,
    /// `--mount` flags, in order.
    pub mounts: Vec<Flag>,
    /// `--network`.
    pub network: Option<Flag>,
    /// `--security`.
    pub security: Option<Flag>,
}

/// Sources and destination shared by COPY and ADD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Paths {
    /// Sources (a `<<NAME` source names a heredoc).
    pub sources: Vec<Word>,
    /// Destination.
    pub dest: Word,
    /// Heredocs opened on the line.
    pub heredocs: Vec<Heredoc>,
}

/// COPY.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Sources and destination.
    pub paths: Paths,
    /// `--from`.
    pub from: Option<Flag>,
    /// `--chown`.
    pub chown: Option<Flag>,
    /// `--chmod`.
    pub chmod: Option<Flag>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude`, repeatable.
    pub exclude: Vec<Flag>,
}

/// ADD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Add {
    /// Sources and destination.
    pub paths: Paths,
    /// `--chown`.
    pub chown: Option<Flag>,
    /// `--chmod`.
    pub chmod: Option<Flag>,
    /// `--link`.
    pub link: bool,
    /// `--checksum` (URL sources).
    pub checksum: Option<Flag>,
    /// `--keep-git-dir` (git sources).
    pub keep_git_dir: bool,
    /// `--unpack` (`None`: the default, unpack local archives only).
    pub unpack: Option<bool>,
    /// `--exclude`, repeatable.
    pub exclude: Vec<Flag>,
}

/// ONBUILD.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Onbuild {
    /// The trigger as written (recorded verbatim in the image config).
    pub expression: String,
    /// The trigger, parsed (so mistakes are reported now, not in the child).
    pub trigger: Box<Instruction>,
}

/// HEALTHCHECK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [flags] CMD …`.
    Check {
        /// The probe.
        command: Command,
        /// `--interval`, `--timeout`, `--start-period`, `--start-interval`,
        /// `--retries`, as written.
        flags: Vec<Flag>,
    },
}

impl Kind {
    /// The canonical upper-case keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::From(_) => "FROM",
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Label(_) => "LABEL",
            Kind::Maintainer(_) => "MAINTAINER",
            Kind::Expose(_) => "EXPOSE",
            Kind::Env(_) => "ENV",
            Kind::Add(_) => "ADD",
            Kind::Copy(_) => "COPY",
            Kind::Volume(_) => "VOLUME",
            Kind::User(_) => "USER",
            Kind::Workdir(_) => "WORKDIR",
            Kind::Arg(_) => "ARG",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Stopsignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Shell(_) => "SHELL",
        }
    }
}
