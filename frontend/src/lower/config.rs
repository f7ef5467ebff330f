//! Instructions that only change the image config (no layer): ENV, LABEL,
//! EXPOSE, VOLUME, USER, CMD, ENTRYPOINT, STOPSIGNAL, HEALTHCHECK, SHELL,
//! ONBUILD, MAINTAINER, ARG. Each records an `empty_layer` history entry
//! worded as BuildKit words it.

use super::stage::Stage;
use super::Lowerer;
use crate::ast::{self, Command, Instruction, Kind};
use crate::error::{Error, ErrorKind};
use crate::expand;

/// Go's `%q` of a string slice, as BuildKit's history shows CMD and friends:
/// `["/bin/sh" "-c" "x"]`.
pub(crate) fn go_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// A command as argv: exec form as is, shell form wrapped in SHELL.
pub(crate) fn argv(shell: &[String], command: &Command) -> Vec<String> {
    match command {
        Command::Exec(v) => v.clone(),
        Command::Shell(text) => {
            let mut v = shell.to_vec();
            v.push(text.clone());
            v
        }
    }
}

/// `80`, `80/udp`, `8000-8002/tcp`, `127.0.0.1:80:80` → `80/tcp` keys.
fn port_keys(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // ip:hostPort:containerPort — only the container port is exposed.
    let container = ports.rsplit(':').next().unwrap_or(ports);
    let bad = || format!("invalid containerPort: {container}");
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = container.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!(
            "invalid range specified for container port: {container}"
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// A Go duration (`1m30s`, `500ms`, `1.5h`) in nanoseconds.
pub(crate) fn go_duration(text: &str) -> Option<i64> {
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

/// The Linux signal names (without `SIG`) that moby's `signal.ParseSignal`
/// knows; `RTMIN+n` and `RTMAX-n` are checked separately.
const SIGNAL_NAMES: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// Whether `s` names a signal as BuildKit's STOPSIGNAL accepts it
/// (moby `signal.ParseSignal`): a non-zero number, or a known name in any
/// case, with or without `SIG` (`SIGTERM`, `term`, `RTMIN+3`).
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<i64>() {
        return n != 0;
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let offset = |rest: &str| {
        rest.parse::<u8>()
            .is_ok_and(|n| (1..=15).contains(&n) && !rest.starts_with('+'))
    };
    if let Some(rest) = name.strip_prefix("RTMIN+") {
        return offset(rest);
    }
    if let Some(rest) = name.strip_prefix("RTMAX-") {
        return offset(rest);
    }
    SIGNAL_NAMES.contains(&name)
}

impl Lowerer<'_> {
    /// Expands ENV/LABEL pairs: keys and values.
    fn key_values(
        &self,
        st: &Stage,
        kvs: &[ast::KeyValue],
    ) -> Result<Vec<(String, String)>, Error> {
        kvs.iter()
            .map(|kv| {
                Ok((
                    self.expand(st, &kv.key, &kv.span)?,
                    self.expand(st, &kv.value, &kv.span)?,
                ))
            })
            .collect()
    }

    pub(super) fn config_instruction(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
    ) -> Result<(), Error> {
        let created_by = match &ins.kind {
            Kind::Env(kvs) => {
                // All pairs are expanded against the env before this
                // instruction, as BuildKit does.
                let pairs = self.key_values(st, kvs)?;
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    st.set_env(&k, &v);
                    shown.push(format!("{k}={v}"));
                }
                format!("ENV {}", shown.join(" "))
            }
            Kind::Label(kvs) => {
                let pairs = self.key_values(st, kvs)?;
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    shown.push(format!("{k}={v}"));
                    st.cc().labels.insert(k, v);
                }
                format!("LABEL {}", shown.join(" "))
            }
            Kind::Expose(words) => {
                let mut keys = Vec::new();
                for w in words {
                    let parts = expand::words(&w.text, self.df.directives.escape, &|n| {
                        self.lookup_var(st, n, w.span.start)
                    })
                    .map_err(|e| {
                        self.src
                            .error(ErrorKind::Expansion, w.span.clone(), e.to_string())
                    })?;
                    for p in parts {
                        let k = port_keys(&p).map_err(|m| {
                            self.src.error(ErrorKind::InvalidValue, w.span.clone(), m)
                        })?;
                        keys.extend(k);
                    }
                }
                for k in &keys {
                    st.cc().exposed_ports.insert(k.clone(), Default::default());
                }
                format!("EXPOSE {}", keys.join(" "))
            }
            Kind::Volume(words) => {
                let mut vols = Vec::new();
                for w in words {
                    let v = self.expand(st, &w.text, &w.span)?;
                    if v.is_empty() {
                        return Err(self.src.error(
                            ErrorKind::InvalidValue,
                            w.span.clone(),
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    vols.push(v);
                }
                for v in &vols {
                    st.cc().volumes.insert(v.clone(), Default::default());
                }
                format!("VOLUME {}", go_list(&vols).replace('"', ""))
            }
            Kind::User(w) => {
                let user = self.expand(st, &w.text, &w.span)?;
                st.cc().user = Some(user.clone());
                format!("USER {user}")
            }
            Kind::Stopsignal(w) => {
                let sig = self.expand(st, &w.text, &w.span)?;
                if !valid_signal(&sig) {
                    return Err(self.src.error(
                        ErrorKind::InvalidValue,
                        w.span.clone(),
                        format!("Invalid signal: {sig}"),
                    ));
                }
                st.cc().stop_signal = Some(sig.clone());
                format!("STOPSIGNAL {sig}")
            }
            Kind::Cmd(c) => {
                self.json_args_recommended(st, ins, c);
                let args = argv(&st.shell, c);
                st.cc().cmd = Some(args.clone());
                st.cmd_set = true;
                format!("CMD {}", go_list(&args))
            }
            Kind::Entrypoint(c) => {
                self.json_args_recommended(st, ins, c);
                let args = argv(&st.shell, c);
                let cmd_set = st.cmd_set;
                let cc = st.cc();
                cc.entrypoint = Some(args.clone());
                // ENTRYPOINT resets a CMD inherited from the base image.
                if !cmd_set {
                    cc.cmd = None;
                }
                format!("ENTRYPOINT {}", go_list(&args))
            }
            Kind::Shell(shell) => {
                st.shell = shell.clone();
                st.cc().shell = shell.clone();
                format!("SHELL {}", go_list(shell))
            }
            Kind::Onbuild(o) => {
                st.cc().on_build.push(o.expression.clone());
                format!("ONBUILD {}", o.expression)
            }
            Kind::Maintainer(m) => {
                st.config.author = Some(m.clone());
                format!("MAINTAINER {m}")
            }
            Kind::Healthcheck(h) => self.healthcheck(st, h)?,
            Kind::Arg(decls) => {
                let mut shown = Vec::new();
                for d in decls {
                    let default = match &d.default {
                        Some(text) => Some(self.expand(st, text, &d.span)?),
                        None => None,
                    };
                    if self.opts.build_args.contains_key(&d.name) {
                        self.consumed.insert(d.name.clone());
                    }
                    let value = self.meta.stage_value(&d.name, default);
                    shown.push(match &value {
                        Some(v) => format!("{}={v}", d.name),
                        None => d.name.clone(),
                    });
                    st.args.retain(|(n, _)| n != &d.name);
                    st.args.push((d.name.clone(), value));
                }
                format!("ARG {}", shown.join(" "))
            }
            Kind::From(_) | Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) | Kind::Workdir(_) => {
                unreachable!("dispatched elsewhere")
            }
        };
        st.history(created_by, true);
        Ok(())
    }

    /// JSONArgsRecommended: a shell-form CMD/ENTRYPOINT while the image has
    /// no SHELL of its own (BuildKit's condition: with an explicit SHELL the
    /// shell form is a deliberate choice).
    fn json_args_recommended(&mut self, st: &Stage, ins: &Instruction, c: &Command) {
        let has_shell = st
            .config
            .config
            .as_ref()
            .is_some_and(|c| !c.shell.is_empty());
        if matches!(c, Command::Shell(_)) && !has_shell {
            let keyword = ins.kind.keyword();
            self.warnings.push(self.src.warning(
                "JSONArgsRecommended",
                Some(ins.span.start),
                format!("JSON arguments recommended for {keyword} to prevent unintended behavior related to OS signals"),
            ));
        }
    }

    fn healthcheck(&self, st: &mut Stage, h: &ast::Healthcheck) -> Result<String, Error> {
        let (command, flags) = match h {
            ast::Healthcheck::None => {
                st.cc().healthcheck = Some(Default::default());
                if let Some(hc) = st.cc().healthcheck.as_mut() {
                    hc.test = vec!["NONE".to_string()];
                }
                return Ok("HEALTHCHECK NONE".to_string());
            }
            ast::Healthcheck::Check { command, flags } => (command, flags),
        };
        let test = match command {
            Command::Exec(v) => std::iter::once("CMD".to_string())
                .chain(v.clone())
                .collect(),
            Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
        };
        st.cc().healthcheck = Some(Default::default());
        let mut shown = Vec::new();
        for f in flags {
            let value = f.value.clone().unwrap_or_default();
            shown.push(format!("--{}={value}", f.name));
            let bad = |msg: String| self.src.error(ErrorKind::InvalidValue, f.span.clone(), msg);
            let hc = st.cc().healthcheck.as_mut().expect("set above");
            if f.name == "retries" {
                hc.retries = value
                    .parse::<i64>()
                    .ok()
                    .filter(|r| *r >= 0)
                    .ok_or_else(|| {
                        bad(format!(
                            "invalid --retries value {value:?}: expected a non-negative integer"
                        ))
                    })?;
                continue;
            }
            let ns = go_duration(&value)
                .ok_or_else(|| bad(format!("invalid duration {value:?} for --{}", f.name)))?;
            if ns != 0 && ns < 1_000_000 {
                return Err(bad(format!(
                    "Interval \"--{}\" cannot be less than 1ms",
                    f.name
                )));
            }
            match f.name.as_str() {
                "interval" => hc.interval = ns,
                "timeout" => hc.timeout = ns,
                "start-period" => hc.start_period = ns,
                _ => hc.start_interval = ns,
            }
        }
        let hc = st.cc().healthcheck.as_mut().expect("set above");
        hc.test = test.clone();
        Ok(format!("HEALTHCHECK {} {}", shown.join(" "), go_list(&test)).replace("  ", " "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let ok: &[(&str, &[&str])] = &[
            ("80", &["80/tcp"]),
            ("80/UDP", &["80/udp"]),
            ("8000-8002/tcp", &["8000/tcp", "8001/tcp", "8002/tcp"]),
            ("127.0.0.1:8080:80", &["80/tcp"]),
        ];
        for (spec, want) in ok {
            assert_eq!(port_keys(spec).unwrap(), *want, "{spec}");
        }
        assert_eq!(
            port_keys("notaport").unwrap_err(),
            "invalid containerPort: notaport"
        );
        assert_eq!(port_keys("80/xyz").unwrap_err(), "invalid proto: xyz");
        assert!(port_keys("9-1").is_err());
        assert!(port_keys("70000").is_err());
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<i64>)] = &[
            ("5s", Some(5_000_000_000)),
            ("1m30s", Some(90_000_000_000)),
            ("100ms", Some(100_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            ("0", Some(0)),
            ("5", None),
            ("s", None),
            ("", None),
            ("3x", None),
        ];
        for (text, want) in cases {
            assert_eq!(go_duration(text), *want, "{text}");
        }
    }

    #[test]
    fn signals() {
        for s in [
            "SIGTERM",
            "TERM",
            "9",
            "SIGRTMIN+3",
            "sigterm",
            "Kill",
            "RTMAX-14",
            "SIGRTMAX",
        ] {
            assert!(valid_signal(s), "{s}");
        }
        for s in [
            "0",
            "",
            "SIG",
            "SIGNOTASIGNAL",
            "FOO",
            "RTMIN+16",
            "RTMAX-0",
            "SIGRTMIN+",
        ] {
            assert!(!valid_signal(s), "{s}");
        }
    }

    #[test]
    fn go_quoting() {
        assert_eq!(
            go_list(&["/bin/sh".into(), "-c".into(), "a \"b\"".into()]),
            r#"["/bin/sh" "-c" "a \"b\""]"#
        );
    }
}
