//! Seccomp: the syscall filter every non-privileged sandbox process runs under.
//!
//! Profiles are in Docker's JSON format (`--security-opt seccomp=PROFILE.json`), and
//! the default is Docker's own default profile (`seccomp/default.json`, the data of
//! moby's `profiles/seccomp/default.json`, Apache-2.0, with the x86-64 and arm64 arch
//! maps): an allow-list of ~350 syscalls, everything else failing with EPERM; `mount`,
//! `unshare`, `setns`, `bpf`, `perf_event_open`, `ptrace` (before 4.8), module loading,
//! `reboot`, clock setting, `acct`, `syslog`, `mbind`… only allowed when the container
//! has the capability that makes them meaningful; `clone` with namespace flags denied
//! and `clone3` failing with ENOSYS (so libcs fall back to `clone`, whose flags can be
//! checked) unless it has CAP_SYS_ADMIN; `personality` restricted to the harmless
//! values; `socket(AF_VSOCK)` denied.
//!
//! Compiled with libseccomp (the `libseccomp` crate; Debian `libseccomp-dev` to build),
//! the library Docker and runc use, so a Docker profile means the same thing here:
//! actions, errno values, argument comparisons (`SCMP_CMP_MASKED_EQ` …), the extra
//! architectures of the arch map, and syscall names resolved per architecture (names
//! unknown to libseccomp are skipped, as runc does). Rules are selected as moby does:
//! `includes`/`excludes` on capabilities (the container's capability set), arches and
//! minimum kernel version.
//!
//! Difference from runc: a syscall newer than the profile (or than libseccomp 2.5)
//! gets the default action, EPERM, where runc's patched filter returns ENOSYS.
//!
//! Compiling Docker's profile for x86-64 with its x86 and x32 companions takes
//! libseccomp ~15 ms, half a container start; so the BPF program it produces is kept
//! in `/run/bake/seccomp/<key>.bpf` (root-only; the key hashes the profile, the
//! capability set, the kernel version, the arch and libseccomp's version) and later
//! sandboxes load that with seccomp(2) directly.
//!
//! The filter is loaded last before exec (after no_new_privs), in the single-threaded
//! sandbox process; `--privileged`, `RUN --security=insecure` and
//! `--security-opt seccomp=unconfined` run without one.

use std::io::{Read, Seek};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::Capability;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::{Deserialize, Serialize};

use crate::caps::CapsHashSet;
use crate::Error;

/// Docker's default profile.
const DEFAULT_PROFILE: &str = include_str!("seccomp/default.json");

/// Which filter a sandbox runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    /// Docker's default profile.
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A Docker-format JSON profile: its text, so that the container keeps it even if
    /// the file changes.
    Profile(String),
}

/// A compiled filter (a classic BPF program), ready to load.
pub(crate) struct Filter(Vec<libc::sock_filter>);

/// Where compiled filters are cached: root-only, on tmpfs, gone at reboot (when the
/// kernel, part of the key, may have changed anyway).
const CACHE_DIR: &str = "/run/bake/seccomp";
/// Bumped when the way a profile is compiled changes.
const CACHE_FORMAT: &str = "bake-seccomp-1";

impl Seccomp {
    /// Checks that the profile parses and compiles for this machine, so that a bad
    /// `--security-opt seccomp=FILE` fails before a container is made.
    ///
    /// # Errors
    /// [`Error::Seccomp`] saying what is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let all: CapsHashSet = caps::all();
        self.filter(false, &all).map(drop)
    }

    /// The filter for a process with capability set `caps`; `None` when it runs
    /// unconfined (privileged, or asked for).
    pub(crate) fn filter(
        &self,
        privileged: bool,
        caps: &CapsHashSet,
    ) -> Result<Option<Filter>, Error> {
        let text = match self {
            _ if privileged => return Ok(None),
            Seccomp::Unconfined => return Ok(None),
            Seccomp::Default => DEFAULT_PROFILE,
            Seccomp::Profile(text) => text.as_str(),
        };
        let kernel = kernel_version();
        let cache =
            cache_dir().map(|dir| dir.join(format!("{}.bpf", cache_key(text, caps, kernel))));
        if let Some(program) = cache.as_deref().and_then(read_program) {
            return Ok(Some(Filter(program)));
        }
        let profile: Profile = serde_json::from_str(text).map_err(|e| Error::Seccomp {
            what: "parsing the profile".into(),
            message: e.to_string(),
        })?;
        let ctx = compile(&profile, caps, kernel)?;
        let bytes = export(&ctx)?;
        if let Some(path) = &cache {
            // Best effort: a failed write only costs the next start a compile.
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            if std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        let program = parse_program(&bytes).ok_or_else(|| Error::Seccomp {
            what: "exporting the filter".into(),
            message: format!(
                "libseccomp produced {} bytes, not whole BPF instructions",
                bytes.len()
            ),
        })?;
        Ok(Some(Filter(program)))
    }
}

impl Filter {
    /// Installs the filter on this process (inherited by everything it execs or forks).
    /// The caller has set no_new_privs.
    pub(crate) fn load(&self) -> Result<(), Error> {
        let prog = libc::sock_fprog {
            len: self.0.len() as u16,
            filter: self.0.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `self.0`, alive for the call; the kernel copies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(Error::Seccomp {
                what: "loading the filter".into(),
                message: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(())
    }
}

/// The BPF program libseccomp generates for `ctx` (through a memfd: the in-memory
/// export needs libseccomp 2.6).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, Error> {
    let fail = |message: String| Error::Seccomp {
        what: "exporting the filter".into(),
        message,
    };
    let fd = rustix::fs::memfd_create("bake-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| fail(e.to_string()))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

/// Native-endian `struct sock_filter`s (8 bytes each); `None` if `bytes` is not a
/// whole, loadable number of them.
fn parse_program(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > usize::from(u16::MAX)
    {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

fn read_program(path: &Path) -> Option<Vec<libc::sock_filter>> {
    parse_program(&std::fs::read(path).ok()?)
}

/// The cache directory, created if needed; `None` unless it is root's alone (a file
/// someone else could plant there would become a container's filter).
fn cache_dir() -> Option<PathBuf> {
    let dir = Path::new(CACHE_DIR);
    if !dir.is_dir() {
        let parent = dir.parent()?;
        let _ = std::fs::create_dir_all(parent);
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::create_dir(dir);
    }
    for d in [dir.parent()?, dir] {
        let meta = std::fs::symlink_metadata(d).ok()?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return None;
        }
    }
    Some(dir.to_path_buf())
}

/// What the compiled program depends on, hashed.
fn cache_key(profile: &str, caps: &CapsHashSet, kernel: (u32, u32)) -> String {
    let mut names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    names.sort();
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    for part in [
        CACHE_FORMAT,
        go_arch(),
        &format!("{kernel:?}"),
        &version,
        &names.join(","),
        profile,
    ] {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    hasher.finalize().to_hex().to_string()
}

/// A Docker seccomp profile (the fields bake reads; others are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<i32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    syscalls: Option<Vec<Rule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Option<Vec<String>>,
    /// The old single-name form.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<i32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Conditions>,
    #[serde(default)]
    excludes: Option<Conditions>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conditions {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

fn profile_error(what: impl Into<String>) -> impl Fn(libseccomp::error::SeccompError) -> Error {
    let what = what.into();
    move |e| Error::Seccomp {
        what: what.clone(),
        message: e.to_string(),
    }
}

fn invalid(message: String) -> Error {
    Error::Seccomp {
        what: "invalid profile".into(),
        message,
    }
}

/// `SCMP_ACT_*` with its errno (EPERM when the profile gives none, as Docker).
fn action(name: &str, errno: Option<i32>) -> Result<ScmpAction, Error> {
    match name {
        "SCMP_ACT_ERRNO" => Ok(ScmpAction::Errno(errno.unwrap_or(libc::EPERM))),
        "SCMP_ACT_TRACE" => Ok(ScmpAction::Trace(errno.unwrap_or(libc::EPERM) as u16)),
        "SCMP_ACT_NOTIFY" => Err(invalid(
            "SCMP_ACT_NOTIFY is not supported (bake has no seccomp agent)".into(),
        )),
        _ => ScmpAction::from_str(name, None)
            .map_err(|_| invalid(format!("unknown action {name:?}"))),
    }
}

/// The Go name of this machine's architecture, which profiles use in `arches`.
fn go_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        std::env::consts::ARCH
    }
}

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    parse_version(&release).unwrap_or((0, 0))
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn has_cap(caps: &CapsHashSet, name: &str) -> bool {
    Capability::from_str(&name.to_ascii_uppercase()).is_ok_and(|c| caps.contains(&c))
}

/// moby's rule selection: every `includes` condition must hold, no `excludes` one.
fn applies(rule: &Rule, caps: &CapsHashSet, kernel: (u32, u32)) -> bool {
    let arch = go_arch();
    let at_least = |v: &Option<String>| {
        v.as_deref()
            .and_then(parse_version)
            .map(|min| kernel >= min)
    };
    if let Some(inc) = &rule.includes {
        if let Some(arches) = &inc.arches {
            if !arches.is_empty() && !arches.iter().any(|a| a == arch) {
                return false;
            }
        }
        if let Some(needed) = &inc.caps {
            if !needed.iter().all(|c| has_cap(caps, c)) {
                return false;
            }
        }
        if at_least(&inc.min_kernel) == Some(false) {
            return false;
        }
    }
    if let Some(exc) = &rule.excludes {
        if exc
            .arches
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| a == arch))
        {
            return false;
        }
        if exc
            .caps
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| has_cap(caps, c)))
        {
            return false;
        }
        if at_least(&exc.min_kernel) == Some(true) {
            return false;
        }
    }
    true
}

fn compare(arg: &Arg) -> Result<ScmpArgCompare, Error> {
    let op = match arg.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // Docker: `value` is the mask, `valueTwo` what the masked argument must equal.
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(ScmpArgCompare::new(
                arg.index,
                ScmpCompareOp::MaskedEqual(arg.value),
                arg.value_two,
            ))
        }
        other => return Err(invalid(format!("unknown comparison {other:?}"))),
    };
    Ok(ScmpArgCompare::new(arg.index, op, arg.value))
}

fn compile(
    profile: &Profile,
    caps: &CapsHashSet,
    kernel: (u32, u32),
) -> Result<ScmpFilterContext, Error> {
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    let mut ctx = ScmpFilterContext::new(default).map_err(profile_error("creating the filter"))?;
    // The native arch is in the context already; add its companions (x86 and x32 on
    // x86-64), whose syscalls would otherwise be killed outright as a foreign arch.
    let native = ScmpArch::native();
    let mut arches: Vec<String> = Vec::new();
    for map in profile.arch_map.iter().flatten() {
        if ScmpArch::from_str(&map.architecture).ok() == Some(native) {
            arches.extend(map.sub_architectures.iter().flatten().cloned());
        }
    }
    if profile.arch_map.as_ref().is_none_or(|m| m.is_empty()) {
        arches.extend(profile.architectures.iter().flatten().cloned());
    }
    for name in arches {
        let arch = ScmpArch::from_str(&name)
            .map_err(|_| invalid(format!("unknown architecture {name:?}")))?;
        if arch != native {
            ctx.add_arch(arch)
                .map_err(profile_error(format!("adding architecture {name}")))?;
        }
    }
    for rule in profile.syscalls.iter().flatten() {
        if !applies(rule, caps, kernel) {
            continue;
        }
        let act = action(&rule.action, rule.errno_ret)?;
        // libseccomp refuses a rule whose action is the default one; it is a no-op anyway.
        if act == default {
            continue;
        }
        let args = rule
            .args
            .iter()
            .flatten()
            .map(compare)
            .collect::<Result<Vec<_>, _>>()?;
        // runc's rule: conditions on distinct arguments are ANDed in one rule; several
        // on the same argument (personality's allowed values) become one rule each.
        let mut indices: Vec<u32> = rule.args.iter().flatten().map(|a| a.index).collect();
        indices.sort_unstable();
        let repeated = indices.windows(2).any(|w| w[0] == w[1]);
        let names = rule.names.iter().flatten().chain(rule.name.iter());
        for name in names {
            // Unknown to libseccomp on every arch: skipped, as runc does.
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let fail = profile_error(format!("adding a rule for {name}"));
            if repeated {
                for cmp in &args {
                    ctx.add_rule_conditional(act, syscall, std::slice::from_ref(cmp))
                        .map_err(&fail)?;
                }
            } else {
                ctx.add_rule_conditional(act, syscall, &args)
                    .map_err(&fail)?;
            }
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_default() -> Profile {
        serde_json::from_str(DEFAULT_PROFILE).unwrap()
    }

    fn caps_of(names: &[&str]) -> CapsHashSet {
        names
            .iter()
            .map(|n| Capability::from_str(n).unwrap())
            .collect()
    }

    fn selected(caps: &CapsHashSet, kernel: (u32, u32)) -> Vec<String> {
        docker_default()
            .syscalls
            .unwrap()
            .iter()
            .filter(|r| applies(r, caps, kernel) && r.action == "SCMP_ACT_ALLOW")
            .flat_map(|r| r.names.clone().unwrap())
            .collect()
    }

    #[test]
    fn the_default_profile_is_dockers_allow_list() {
        let p = docker_default();
        assert_eq!(p.default_action, "SCMP_ACT_ERRNO");
        let allowed = selected(&crate::caps::DEFAULT.into_iter().collect(), (6, 1));
        assert!(allowed.len() > 340, "{}", allowed.len());
        for ok in [
            "read",
            "execve",
            "clone",
            "ptrace",
            "arch_prctl",
            "chroot",
            "socket",
        ] {
            assert!(allowed.iter().any(|n| n == ok), "{ok}");
        }
        for denied in [
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "userfaultfd",
            "reboot",
            "swapon",
            "settimeofday",
            "clock_settime",
            "acct",
            "quotactl",
            "lookup_dcookie",
            "syslog",
            "vm86",
            "mbind",
            "move_pages",
        ] {
            assert!(!allowed.iter().any(|n| n == denied), "{denied} is allowed");
        }
    }

    #[test]
    fn rules_follow_capabilities_and_kernel() {
        let admin = selected(&caps_of(&["CAP_SYS_ADMIN"]), (6, 1));
        assert!(admin.iter().any(|n| n == "mount"));
        assert!(!selected(&CapsHashSet::new(), (6, 1))
            .iter()
            .any(|n| n == "mount"));
        // ptrace is only safe in the default set from 4.8 on.
        assert!(!selected(&CapsHashSet::new(), (4, 4))
            .iter()
            .any(|n| n == "ptrace"));
        assert_eq!(parse_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_version("4.8"), Some((4, 8)));
    }

    fn instructions(f: &Filter) -> Vec<(u16, u8, u8, u32)> {
        f.0.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    #[test]
    fn compiled_programs_are_cached_and_read_back_alike() {
        let caps: CapsHashSet = crate::caps::DEFAULT.into_iter().collect();
        let first = Seccomp::Default.filter(false, &caps).unwrap().unwrap();
        assert!(first.0.len() > 100, "{} instructions", first.0.len());
        let Some(dir) = cache_dir() else {
            eprintln!("skipped: cache check: {CACHE_DIR} is not usable here (not root?)");
            return;
        };
        let path = dir.join(format!(
            "{}.bpf",
            cache_key(DEFAULT_PROFILE, &caps, kernel_version())
        ));
        assert!(path.is_file(), "{} was not written", path.display());
        let again = Seccomp::Default.filter(false, &caps).unwrap().unwrap();
        assert_eq!(instructions(&first), instructions(&again));
        // Another capability set is another program.
        let admin: CapsHashSet = caps_of(&["CAP_SYS_ADMIN"]);
        assert_ne!(
            cache_key(DEFAULT_PROFILE, &admin, (6, 1)),
            cache_key(DEFAULT_PROFILE, &caps, (6, 1))
        );
        assert!(parse_program(&[0; 12]).is_none());
        assert!(parse_program(&[]).is_none());
    }

    #[test]
    fn profiles_compile_or_say_why() {
        let caps = crate::caps::DEFAULT.into_iter().collect();
        assert!(compile(&docker_default(), &caps, (6, 1)).is_ok());
        let bad = |json: &str| {
            Seccomp::Profile(json.into())
                .filter(false, &caps)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(bad("{").contains("parsing the profile"));
        assert!(bad(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).contains("unknown action"));
        assert!(bad(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}"#).contains("unknown comparison"));
        assert!(Seccomp::Unconfined.filter(false, &caps).unwrap().is_none());
        assert!(Seccomp::Default.filter(true, &caps).unwrap().is_none());
        assert!(Seccomp::Default.validate().is_ok());
    }
}
