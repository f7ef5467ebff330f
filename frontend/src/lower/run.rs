//! RUN → an Exec vertex: argv (SHELL-wrapped shell form, heredocs), env
//! (ENV + ARGs in scope), cwd, user, `--network`, `--security`, `--mount`.

use bake_solver::ir::{
    Exec, FileAction, FileOp, Mount, MountKind, Network, Op, Security, Sharing, VertexId,
};

use super::config::argv;
use super::path;
use super::stage::{display, Stage};
use super::Lowerer;
use crate::ast::{self, Command, Flag, Instruction};
use crate::error::{Error, ErrorKind};
use crate::heredoc;

/// Splits a `--mount` value into fields like Go's CSV reader: commas
/// separate, double quotes group.
fn csv_fields(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            _ => out.last_mut().expect("non-empty").push(c),
        }
    }
    out
}

fn parse_bool(v: Option<&str>) -> Option<bool> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") | Some("1") => Some(true),
        Some("false") | Some("0") => Some(false),
        _ => None,
    }
}

/// `64m`, `1g`, `1024` → bytes.
fn parse_size(v: &str) -> Option<u64> {
    let lower = v.to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (num, mult) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1u64 << 10),
        'm' => (&lower[..lower.len() - 1], 1 << 20),
        'g' => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// A parsed `--mount` before inputs are resolved.
#[derive(Debug, Default)]
struct MountSpec {
    kind: String,
    target: Option<String>,
    source: Option<String>,
    from: Option<String>,
    readonly: Option<bool>,
    id: Option<String>,
    sharing: Sharing,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    required: bool,
    env: Option<String>,
}

fn parse_mount(fields: &[String]) -> Result<MountSpec, String> {
    let mut m = MountSpec {
        kind: "bind".to_string(),
        ..MountSpec::default()
    };
    for field in fields.iter().filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = || {
            value
                .map(str::to_string)
                .ok_or(format!("invalid field '{field}' must be a key=value pair"))
        };
        let num = |radix: u32| {
            value
                .and_then(|v| u32::from_str_radix(v, radix).ok())
                .ok_or(format!("invalid value for {key}: {}", value.unwrap_or("")))
        };
        match key.as_str() {
            "type" => m.kind = need()?.to_ascii_lowercase(),
            "target" | "dst" | "destination" => m.target = Some(need()?),
            "source" | "src" => m.source = Some(need()?),
            "from" => m.from = Some(need()?),
            "id" => m.id = Some(need()?),
            "env" => m.env = Some(need()?),
            "ro" | "readonly" => {
                m.readonly =
                    Some(parse_bool(value).ok_or(format!("invalid value for {key}: {field}"))?)
            }
            "rw" | "readwrite" => {
                m.readonly =
                    Some(!parse_bool(value).ok_or(format!("invalid value for {key}: {field}"))?)
            }
            "required" => {
                m.required = parse_bool(value).ok_or(format!("invalid value for {key}: {field}"))?
            }
            "sharing" => {
                m.sharing = match need()?.as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => return Err(format!("unsupported sharing value \"{other}\"")),
                }
            }
            "mode" => m.mode = Some(num(8)?),
            "uid" => m.uid = Some(num(10)?),
            "gid" => m.gid = Some(num(10)?),
            "size" => {
                let v = need()?;
                m.size = Some(parse_size(&v).ok_or(format!("invalid value for size: {v}"))?)
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    Ok(m)
}

impl Lowerer<'_> {
    pub(super) fn run(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
        run: &ast::Run,
    ) -> Result<(), Error> {
        let root = match st.vertex {
            Some(v) => v,
            None => self.scratch(),
        };
        let mut inputs = vec![root];
        let mut mounts = Vec::new();
        let args = self.run_args(st, ins, run, &mut inputs, &mut mounts)?;
        for flag in &run.mounts {
            let mount = self.mount(st, flag, &mut inputs)?;
            mounts.push(mount);
        }
        let network = match run.network.as_ref().and_then(|f| f.value.as_deref()) {
            None | Some("default") => Network::Default,
            Some("none") => Network::None,
            Some("host") => Network::Host,
            Some(other) => {
                return Err(self.src.error(
                    ErrorKind::InvalidValue,
                    run.network
                        .as_ref()
                        .map(|f| f.span.clone())
                        .unwrap_or_default(),
                    format!("unsupported network mode \"{other}\" (default, none or host)"),
                ))
            }
        };
        let security = match run.security.as_ref().and_then(|f| f.value.as_deref()) {
            None | Some("sandbox") => Security::Sandbox,
            Some("insecure") => Security::Insecure,
            Some(other) => {
                return Err(self.src.error(
                    ErrorKind::InvalidValue,
                    run.security
                        .as_ref()
                        .map(|f| f.span.clone())
                        .unwrap_or_default(),
                    format!("unsupported security mode \"{other}\" (sandbox or insecure)"),
                ))
            }
        };
        let mut env: Vec<String> = st
            .config
            .config
            .as_ref()
            .map(|c| c.env.clone())
            .unwrap_or_default();
        let visible = st.visible_args();
        for (k, v) in &visible {
            env.push(format!("{k}={v}"));
        }
        for (k, v) in self.meta.proxies() {
            if st.lookup(k).is_none() {
                env.push(format!("{k}={v}"));
            }
        }
        let prefix = if visible.is_empty() {
            String::new()
        } else {
            let kvs: Vec<String> = visible.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("|{} {} ", kvs.len(), kvs.join(" "))
        };
        let created_by = format!("RUN {prefix}{} # buildkit", args.join(" "));
        let exec = Exec {
            args,
            env,
            cwd: st.workdir(),
            user: st.user(),
            network,
            security,
            mounts,
        };
        let name = st.vertex_name(&display(ins));
        let v = self.push(Op::Exec(exec), inputs, name, Some(ins));
        st.vertex = Some(v);
        st.history(created_by, false);
        Ok(())
    }

    /// argv, handling heredocs the way BuildKit does: a RUN that is only
    /// `<<EOF` runs the body with the shell (or, with a `#!` line, as an
    /// executable file mounted at `/dev/pipes/`); otherwise the shell gets
    /// the whole text, heredocs included, and handles them itself.
    fn run_args(
        &mut self,
        st: &Stage,
        ins: &Instruction,
        run: &ast::Run,
        inputs: &mut Vec<VertexId>,
        mounts: &mut Vec<Mount>,
    ) -> Result<Vec<String>, Error> {
        let Command::Shell(text) = &run.command else {
            return Ok(argv(&st.shell, &run.command));
        };
        if run.heredocs.is_empty() {
            return Ok(argv(&st.shell, &run.command));
        }
        let only = heredoc::parse_marker(text.trim())
            .filter(|(name, _, _)| run.heredocs.len() == 1 && *name == run.heredocs[0].name);
        if only.is_none() {
            let mut full = text.clone();
            for h in &run.heredocs {
                full.push('\n');
                full.push_str(&h.body);
                full.push_str(&h.name);
            }
            return Ok(argv(&st.shell, &Command::Shell(full)));
        }
        let h = &run.heredocs[0];
        let content = h.content();
        if !content.starts_with("#!") {
            return Ok(argv(&st.shell, &Command::Shell(content)));
        }
        let scratch = self.scratch();
        let file = Op::File(FileOp {
            actions: vec![FileAction::Mkfile {
                path: format!("/{}", h.name),
                mode: 0o755,
                data: content,
                owner: None,
            }],
        });
        let script = self.push(
            file,
            vec![scratch],
            st.vertex_name(&format!("{} (heredoc script)", display(ins))),
            Some(ins),
        );
        inputs.push(script);
        mounts.push(Mount {
            target: "/dev/pipes".to_string(),
            kind: MountKind::Bind {
                input: inputs.len() - 1,
                source: "/".to_string(),
                readwrite: false,
            },
        });
        Ok(vec![format!("/dev/pipes/{}", h.name)])
    }

    fn mount(
        &mut self,
        st: &Stage,
        flag: &Flag,
        inputs: &mut Vec<VertexId>,
    ) -> Result<Mount, Error> {
        let src = self.src;
        let bad = |msg: String| src.error(ErrorKind::InvalidValue, flag.span.clone(), msg);
        let raw = flag.value.clone().unwrap_or_default();
        let mut fields = Vec::new();
        for f in csv_fields(&raw) {
            fields.push(self.expand(st, &f, &flag.span)?);
        }
        let m = parse_mount(&fields).map_err(|e| bad(format!("--mount={raw}: {e}")))?;
        let workdir = st.workdir();
        let target = m.target.as_deref().map(|t| path::absolute(&workdir, t));
        let require_target = || {
            target.clone().ok_or_else(|| {
                bad(format!(
                    "--mount={raw}: mount type {} requires a target",
                    m.kind
                ))
            })
        };
        let mut input_of = |this: &mut Self, from: Option<&str>| -> Result<usize, Error> {
            let v = match from {
                Some(f) => this.named_source(st.index, f, flag.span.clone(), &st.platform)?,
                None => this.context(),
            };
            inputs.push(v);
            Ok(inputs.len() - 1)
        };
        let kind = match m.kind.as_str() {
            "bind" => {
                let target = require_target()?;
                let input = input_of(self, m.from.as_deref())?;
                let mount = Mount {
                    target,
                    kind: MountKind::Bind {
                        input,
                        source: m.source.clone().unwrap_or_else(|| "/".to_string()),
                        readwrite: m.readonly == Some(false),
                    },
                };
                return Ok(mount);
            }
            "cache" => {
                let target = require_target()?;
                let seed = match &m.from {
                    Some(f) => Some((
                        input_of(self, Some(f))?,
                        m.source.clone().unwrap_or_else(|| "/".to_string()),
                    )),
                    None => None,
                };
                return Ok(Mount {
                    kind: MountKind::Cache {
                        id: m.id.clone().unwrap_or_else(|| target.clone()),
                        sharing: m.sharing,
                        readonly: m.readonly.unwrap_or(false),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                        mode: m.mode.unwrap_or(0o755),
                        seed,
                    },
                    target,
                });
            }
            "tmpfs" => MountKind::Tmpfs { size: m.size },
            "secret" => {
                let id = match (&m.id, &target) {
                    (Some(id), _) => id.clone(),
                    (None, Some(t)) => path::base(t),
                    (None, None) => {
                        return Err(bad(format!(
                            "--mount={raw}: secret mount needs an id or a target"
                        )))
                    }
                };
                let kind = MountKind::Secret {
                    id: id.clone(),
                    required: m.required,
                    mode: m.mode.unwrap_or(0o400),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    env: m.env.clone(),
                };
                // `env=` without a target exposes the secret as a variable
                // only, as BuildKit does; an empty target says "no file".
                let target = match (target, &m.env) {
                    (Some(t), _) => t,
                    (None, Some(_)) => String::new(),
                    (None, None) => format!("/run/secrets/{id}"),
                };
                return Ok(Mount { target, kind });
            }
            "ssh" => {
                let kind = MountKind::Ssh {
                    id: m.id.clone().unwrap_or_else(|| "default".to_string()),
                    required: m.required,
                    mode: m.mode.unwrap_or(0o600),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                };
                return Ok(Mount {
                    target: target.unwrap_or_else(|| "/run/buildkit/ssh_agent.0".to_string()),
                    kind,
                });
            }
            other => {
                return Err(bad(format!(
                    "--mount={raw}: unsupported mount type \"{other}\""
                )))
            }
        };
        Ok(Mount {
            target: require_target()?,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_fields() {
        let m = parse_mount(&csv_fields(
            "type=cache,target=/c,id=x,sharing=locked,ro,uid=1,mode=0700",
        ))
        .unwrap();
        assert_eq!(m.kind, "cache");
        assert_eq!(m.target.as_deref(), Some("/c"));
        assert_eq!(m.sharing, Sharing::Locked);
        assert_eq!(m.readonly, Some(true));
        assert_eq!((m.uid, m.mode), (Some(1), Some(0o700)));
        let m = parse_mount(&csv_fields("target=/x,rw")).unwrap();
        assert_eq!((m.kind.as_str(), m.readonly), ("bind", Some(false)));
        assert!(parse_mount(&csv_fields("type=cache,bogus=1"))
            .unwrap_err()
            .contains("unexpected key"));
        assert!(parse_mount(&csv_fields("sharing=sometimes")).is_err());
        assert_eq!(csv_fields("a=\"x,y\",b"), ["a=x,y", "b"]);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
    }
}
