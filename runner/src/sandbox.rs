//! The sandbox process: `bake __bake-sandbox <plan-fd> <error-fd> [<console-socket-fd>]`.
//!
//! Why a re-executed process and not a fork of bake: bake is multi-threaded (rayon,
//! the scheduler, tokio inside the registry client). After fork() in a threaded process
//! only async-signal-safe calls are allowed until exec, and unshare() of some namespaces
//! refuses a threaded caller. A fresh `/proc/self/exe` is single-threaded, so here we
//! may allocate, read JSON, fork again and mount freely.
//!
//! Two processes:
//! - the *supervisor* (this process, in the host's namespaces) prepares the scratch dir,
//!   unshares a pid namespace, forks, relays signals to the child, waits, removes the
//!   mount-point stubs from the upper dir, and exits like the child did;
//! - the *init* child (pid 1 of the new pid namespace) unshares mount/uts/ipc(/net),
//!   mounts the rootfs, pivots into it, drops privileges and execs the command.
//!
//! The child gets its own mount namespace (the supervisor does not share it) because
//! pivot_root moves the root of every process of a mount namespace, and the supervisor
//! must keep the host's view to clean the upper dir afterwards — by which time the
//! child's namespace, and every mount in it, has died with its last process.
//!
//! The command is exec'd directly as pid 1, or, with `--init`, forked by a tiny reaper
//! that stays pid 1 (`reaper.rs`). `bake exec` takes another path (`join.rs`).

use std::convert::Infallible;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};
use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::mounts::apply::{errno, remount_readonly};
use crate::mounts::plan::{hosts_file, EtcFiles};
use crate::mounts::stubs::Stubs;
use crate::mounts::MountPlan;
use crate::network::{self, Slirp};
use crate::options::{now_ms, write_state};
use crate::overlay::{make_private, mount_layers};
use crate::{caps, exec, user, Error, Exec, Exit, Network, Options, Plan, State, Status};

/// What the sandbox process is asked to do.
// One per sandbox process, never in a collection: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize)]
pub(crate) enum Job {
    /// Build a new container and run the plan's command in it.
    Run {
        /// The container.
        plan: Plan,
        /// Container-only settings.
        options: Options,
    },
    /// Run a command in an existing container.
    Exec(Exec),
}

/// What `run`, `start` and `exec` send to the sandbox process.
#[derive(Serialize, Deserialize)]
pub(crate) struct Request {
    pub job: Job,
    /// The stdio is a pty slave that must become the controlling terminal.
    pub tty: bool,
    /// Nobody waits for the sandbox (`bake run -d`): it must outlive its parent.
    pub detached: bool,
    /// Run on a copied tree instead of overlayfs (the copying snapshotter, `copy_view`).
    #[serde(default)]
    pub copy: bool,
}

/// Signals the supervisor forwards to the container (and SIGCHLD, which it waits for).
const FORWARDED: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Entry point of the sandbox process. The cli's `main` calls it, before anything else,
/// when its first argument is [`crate::SANDBOX_ARG`]; test binaries that call
/// [`crate::run`] must do the same. Returns the container's exit code; when the
/// container was killed by a signal, the process kills itself with the same signal so
/// that [`crate::run`] sees it.
pub fn sandbox_main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let fd = |i: usize| args.get(i).and_then(|s| s.parse::<RawFd>().ok());
    let (Some(plan_fd), Some(err_fd)) = (fd(2), fd(3)) else {
        return ExitCode::from(125);
    };
    // SAFETY: `run` passed these fds, open and unused by anyone else, for us to own.
    let (plan_file, err) = unsafe { (File::from_raw_fd(plan_fd), OwnedFd::from_raw_fd(err_fd)) };
    // SAFETY: as above; only passed in Tty mode.
    let console = fd(4).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    // The error fd must vanish at the container's exec: EOF on it tells `run` that the
    // exec succeeded. The same for the console socket.
    let _ = rustix::io::fcntl_setfd(&err, rustix::io::FdFlags::CLOEXEC);
    let _ = rustix::io::fcntl_setfd(&plan_file, rustix::io::FdFlags::CLOEXEC);
    if let Some(console) = &console {
        let _ = rustix::io::fcntl_setfd(console, rustix::io::FdFlags::CLOEXEC);
    }
    // Until it execs the command, a sandbox process is the host's bake binary, inside
    // the container's pid namespace (`exec`'s child, the `--init` reaper for the whole
    // life of the container). Not dumpable: container processes cannot open its
    // /proc/<pid>/exe (the host binary) or its fds (runc's CVE-2019-5736). execve of
    // the command makes the command dumpable again, as usual.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // If bake dies (even by SIGKILL), so does the sandbox. The thread that spawned us
    // waits in `run` for as long as we live, so its exit cannot trigger this early.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let request = match read_request(plan_file) {
        Ok(r) => r,
        Err(e) => {
            report(&err, &e);
            return ExitCode::from(125);
        }
    };
    if request.detached {
        // `bake run -d` exits as soon as the container runs; the container must not.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    }
    let console = console.filter(|_| request.tty);
    match &request.job {
        Job::Run { plan, options } => supervise(plan, options, request.copy, err, console),
        Job::Exec(exec) => crate::join::supervise(exec, err, console),
    }
}

fn read_request(mut file: File) -> Result<Request, Error> {
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| Error::InvalidPlan {
            message: format!("reading the plan: {e}"),
        })?;
    serde_json::from_str(&text).map_err(|e| Error::InvalidPlan {
        message: format!("decoding the plan: {e}"),
    })
}

/// Sends `error` to `run` (best effort: if `run` is gone, nobody is listening).
pub(crate) fn report(fd: &OwnedFd, error: &Error) {
    let bytes = serde_json::to_vec(error).unwrap_or_else(|_| {
        serde_json::to_vec(&Error::BadReport {
            report: error.to_string(),
        })
        .unwrap_or_default()
    });
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        match rustix::io::write(fd, rest) {
            Ok(n) if n > 0 => rest = &rest[n..],
            Err(rustix::io::Errno::INTR) => {}
            _ => break,
        }
    }
}

/// Host-side preparation, done by the supervisor before the fork.
struct Prepared {
    lowers: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
    /// Private dir next to `work`: `merged/` (the mount point), `hosts`, `resolv.conf`.
    scratch: PathBuf,
    mounts: MountPlan,
    stubs: Stubs,
    /// The copied rootfs (`scratch/copy-tree`) when not on overlayfs; synced into
    /// `upper` after the run.
    copy_tree: Option<PathBuf>,
}

fn canonical(path: &Path) -> Result<PathBuf, Error> {
    std::fs::canonicalize(path).map_err(|e| Error::Rootfs {
        path: path.to_path_buf(),
        source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })
}

fn create_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::CreateFile {
        path: path.to_path_buf(),
        source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    }
}

/// The scratch dir of the sandbox whose supervisor has pid `supervisor` and whose
/// overlay work dir is `work`: next to `work`, on the store's filesystem, private to
/// one run (one supervisor per pid), and never inside `upper`, so nothing of it can
/// land in the layer. `copy_view::sync_running` finds a running container's tree here.
pub(crate) fn scratch_dir(work: &Path, supervisor: u32) -> PathBuf {
    work.parent()
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
        .join(format!("{SCRATCH_PREFIX}{supervisor}"))
}

/// The name of a scratch dir before the supervisor's pid (see [`scratch_dir`]).
pub(crate) const SCRATCH_PREFIX: &str = ".bake-sandbox-";

fn prepare(plan: &Plan, copy: bool) -> Result<Prepared, Error> {
    let lowers = plan
        .rootfs
        .lowers
        .iter()
        .map(|l| canonical(l))
        .collect::<Result<Vec<_>, _>>()?;
    let upper = canonical(&plan.rootfs.upper)?;
    let work = canonical(&plan.rootfs.work)?;
    let scratch = scratch_dir(&work, std::process::id());
    if copy {
        // Before the stale dir of a dead run with this pid goes: it may hold a tree.
        crate::copy_view::recover(&work, &upper)?;
    }
    if scratch.exists() {
        // Left by a killed run whose pid we now have; nothing is mounted in it here.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    std::fs::create_dir(&scratch).map_err(create_error(&scratch))?;
    let merged = scratch.join("merged");
    std::fs::create_dir(&merged).map_err(create_error(&merged))?;
    let etc = EtcFiles::in_dir(&scratch);
    let mut hosts = plan.hosts.clone();
    let bridge = plan.network == Network::Bridge;
    if bridge && !plan.hostname.is_empty() {
        hosts.push((plan.hostname.clone(), network::CONTAINER_ADDRESS.into()));
    }
    std::fs::write(&etc.hosts, hosts_file(&plan.hostname, &hosts))
        .map_err(create_error(&etc.hosts))?;
    // The host's resolver configuration, as Docker does with the default network; on
    // the bridge, slirp4netns's forwarder (a host resolver on 127.0.0.x is unreachable).
    let resolv = if bridge {
        format!("nameserver {}\n", network::DNS).into_bytes()
    } else {
        std::fs::read("/etc/resolv.conf").unwrap_or_default()
    };
    std::fs::write(&etc.resolv_conf, resolv).map_err(create_error(&etc.resolv_conf))?;
    let copy_tree = if copy {
        let tree = scratch.join(crate::copy_view::TREE);
        if let Err(e) = crate::copy_view::prepare(&lowers, &upper, &tree) {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
        Some(tree)
    } else {
        None
    };
    let mounts = MountPlan::build(plan, &etc)?;
    let stubs = Stubs::record(&upper, &mounts.stub_candidates()).map_err(|e| Error::Rootfs {
        path: upper.clone(),
        source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    Ok(Prepared {
        lowers,
        upper,
        work,
        scratch,
        mounts,
        stubs,
        copy_tree,
    })
}

fn supervise(
    plan: &Plan,
    options: &Options,
    copy: bool,
    err: OwnedFd,
    console: Option<OwnedFd>,
) -> ExitCode {
    let prepared = match prepare(plan, copy) {
        Ok(p) => p,
        Err(e) => {
            report(&err, &e);
            return ExitCode::from(125);
        }
    };
    let cgroup = if options.limits.any() {
        let name = options
            .limits
            .name
            .clone()
            .unwrap_or_else(|| std::process::id().to_string());
        match Cgroup::create(&options.limits, &name) {
            Ok(c) => c,
            Err(e) => {
                report(&err, &e);
                let _ = std::fs::remove_dir_all(&prepared.scratch);
                return ExitCode::from(125);
            }
        }
    } else {
        Cgroup::default()
    };
    // Before the pid namespace: slirp4netns must not become its pid 1.
    let slirp = if plan.network == Network::Bridge {
        match Slirp::start(&prepared.scratch, &options.ports) {
            Ok(s) => Some(s),
            Err(e) => {
                report(&err, &e);
                let _ = std::fs::remove_dir_all(&prepared.scratch);
                cgroup.remove();
                return ExitCode::from(125);
            }
        }
    } else {
        None
    };
    let netns = slirp.as_ref().map(Slirp::netns);
    // Blocked before the fork so that none is lost; received with sigwait below.
    let mut waited = SigSet::empty();
    waited.add(Signal::SIGCHLD);
    for s in FORWARDED {
        waited.add(s);
    }
    let fail = |e: Error| {
        report(&err, &e);
        let _ = std::fs::remove_dir_all(&prepared.scratch);
        cgroup.remove();
        ExitCode::from(125)
    };
    if let Err(e) = signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None) {
        return fail(Error::Fork { source: e });
    }
    // Our own pid namespace, to fork into again once the container's has died
    // (forking into a pid namespace whose pid 1 is gone fails).
    let host_pid_ns = rustix::fs::open(
        "/proc/self/ns/pid",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok();
    if let Err(source) = unshare(CloneFlags::CLONE_NEWPID) {
        return fail(Error::Unshare {
            namespaces: "CLONE_NEWPID".into(),
            source,
        });
    }
    // SAFETY: this process is single-threaded (a fresh exec of bake that started no
    // thread), so the child may do anything after fork.
    match unsafe { fork() } {
        Err(source) => fail(Error::Fork { source }),
        Ok(ForkResult::Child) => {
            let e = match init(
                plan,
                options,
                &cgroup,
                netns,
                console.as_ref(),
                &err,
                &prepared,
            ) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            report(&err, &e);
            // _exit: no destructor of the supervisor's state may run in the child.
            // SAFETY: ends the process; nothing to uphold.
            unsafe { libc::_exit(e.docker_code()) }
        }
        Ok(ForkResult::Parent { child }) => {
            // Recorded before `err` closes: once `run`/`start` sees the exec succeed,
            // the state names the container's pid.
            let mut state = State {
                status: Status::Running,
                supervisor: std::process::id(),
                pid: child.as_raw() as u32,
                started_ms: now_ms(),
                ..State::default()
            };
            if let Some(path) = &options.state_file {
                let _ = write_state(path, &state);
            }
            drop(err);
            drop(console);
            let status = wait_relaying(child, &waited);
            // Stops forwarding the ports (kills and reaps slirp4netns).
            drop(slirp);
            cgroup.remove();
            crate::cgroup::remove_pause_group(child.as_raw() as u32);
            if let Some(dir) = &options.remove_after {
                crate::teardown::remove_in_background(dir, host_pid_ns.as_ref());
                return exit_like(status);
            }
            // The child's mount namespace died with the pid namespace: the upper dir is
            // no longer under an overlay and the scratch dir holds no mount. A copied
            // tree is written into the upper dir first (stubs included, removed next).
            let synced = match &prepared.copy_tree {
                Some(tree) => crate::copy_view::sync_into_upper(tree, &prepared.upper, true),
                None => Ok(true),
            };
            prepared.stubs.remove_created();
            if synced.is_ok() {
                // On failure the tree is kept: it holds the only copy of what was lost.
                let _ = std::fs::remove_dir_all(&prepared.scratch);
            }
            if options.volatile {
                crate::overlay::clear_volatile(&prepared.work);
            }
            let status = match synced {
                Ok(_) => status,
                Err(e) => {
                    // The layer is incomplete: nobody may take this run for a success.
                    // The error pipe is closed by now; stderr is the only way left to
                    // say why.
                    let kept = prepared.copy_tree.as_deref().unwrap_or(&prepared.scratch);
                    eprintln!(
                        "bake: the container's changes were not saved: {e} (its files are \
                         kept in {})",
                        kept.display()
                    );
                    WaitStatus::Exited(child, 125)
                }
            };
            if let Some(path) = &options.state_file {
                state.exit = Some(match status {
                    WaitStatus::Exited(_, code) => Exit::Code(code),
                    WaitStatus::Signaled(_, sig, _) => Exit::Signal(sig as i32),
                    _ => Exit::Code(125),
                });
                state.finished_ms = Some(now_ms());
                state.status = Status::Exited;
                let _ = write_state(path, &state);
            }
            exit_like(status)
        }
    }
}

/// Waits for `child`, forwarding the signals in `waited` (blocked) to it.
pub(crate) fn wait_relaying(child: Pid, waited: &SigSet) -> WaitStatus {
    loop {
        match waited.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                        return status
                    }
                    Ok(WaitStatus::StillAlive) => break,
                    Ok(_) => {}
                    Err(Errno::EINTR) => {}
                    Err(_) => return WaitStatus::Exited(child, 125),
                }
            },
            Ok(sig) => {
                let _ = signal::kill(child, sig);
            }
            Err(_) => {}
        }
    }
}

/// Exits with the child's code, or dies of the child's signal (without a core dump).
pub(crate) fn exit_like(status: WaitStatus) -> ExitCode {
    match status {
        WaitStatus::Signaled(_, sig, _) => {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain syscalls on this process's own state.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                let _ = signal::signal(sig, SigHandler::SigDfl);
            }
            let mut set = SigSet::empty();
            set.add(sig);
            let _ = signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
            let _ = signal::raise(sig);
            ExitCode::from(128u8.wrapping_add(sig as u8))
        }
        WaitStatus::Exited(_, code) => ExitCode::from(code as u8),
        _ => ExitCode::from(125),
    }
}

/// pid 1 of the sandbox: builds the container and execs the command. With a console
/// socket, the command gets a new terminal whose master goes back to `run`.
fn init(
    plan: &Plan,
    options: &Options,
    cgroup: &Cgroup,
    netns: Option<&OwnedFd>,
    console: Option<&OwnedFd>,
    err: &OwnedFd,
    prepared: &Prepared,
) -> Result<Infallible, Error> {
    rustix::process::umask(Mode::from_raw_mode(0o022));
    // The container dies with its supervisor: from the parent pid namespace, SIGKILL
    // reaches even a pid 1. It survives exec (unless the command is setuid).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // First, so that everything the container ever starts is counted.
    cgroup.join()?;
    let keep = caps::effective_set(&options.cap_add, &options.cap_drop)?;
    // Compiled before the rootfs is entered (a bad profile fails early); loaded last.
    let filter = options.seccomp.filter(plan.privileged, &keep)?;
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if plan.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|source| Error::Unshare {
        namespaces: format!("{flags:?}"),
        source,
    })?;
    // Nothing mounted from here on may propagate back to the host.
    make_private("/")?;
    if plan.network == Network::None {
        crate::teardown::loopback_up()?;
    }
    if let Some(netns) = netns {
        // The bridge's namespace, made and configured by the supervisor's slirp4netns.
        nix::sched::setns(netns, CloneFlags::CLONE_NEWNET).map_err(|source| Error::Unshare {
            namespaces: "setns(CLONE_NEWNET) into the bridge network".into(),
            source,
        })?;
    }
    let merged = prepared.scratch.join("merged");
    match &prepared.copy_tree {
        // The copied tree is the rootfs; a bind mount makes it a mount point for
        // pivot_root and the nodev remount.
        Some(tree) => crate::overlay::bind_mount(tree, &merged)?,
        None => mount_layers(
            &prepared.lowers,
            Some((&prepared.upper, &prepared.work)),
            &merged,
            options.volatile,
        )?,
    }
    if !plan.privileged {
        // Docker denies opening device nodes through its devices cgroup; a nodev root
        // does the same for nodes made with CAP_MKNOD (`mknod /x b 8 0` is allowed,
        // reading the host's disk through it is not). /dev's own nodes are bind
        // mounts of the host's and keep their own flags.
        nix::mount::mount(
            None::<&str>,
            &merged,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .map_err(|source| Error::Mount {
            fstype: "rootfs (nodev remount)".into(),
            target: merged.clone(),
            source,
        })?;
    }
    crate::mounts::apply::apply(&merged, &prepared.mounts)?;
    pivot_into(&merged)?;
    if !plan.hostname.is_empty() {
        nix::unistd::sethostname(&plan.hostname).map_err(|source| Error::Hostname {
            hostname: plan.hostname.clone(),
            source,
        })?;
    }
    let cwd = crate::mounts::plan::normalize(&plan.cwd)?;
    std::fs::create_dir_all(&cwd).map_err(|e| Error::CreateCwd {
        cwd: cwd.clone(),
        source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    if plan.readonly_rootfs {
        let root = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).map_err(
            |e| Error::RemountReadonly {
                target: "/".into(),
                source: errno(e),
            },
        )?;
        remount_readonly(&root, "/", Path::new("/"))?;
    }
    let env = become_user(
        &plan.user,
        &cwd,
        &plan.env,
        plan.privileged,
        &keep,
        filter.as_ref(),
        console,
    )?;
    if options.init {
        // pid 1 stays ours: it forks the command and reaps; only the command execs.
        crate::reaper::fork_command(err)?;
    }
    Err(exec_command(&plan.args, &env))
}

/// The end of every sandboxed process, shared with `bake exec`: the user resolved from
/// the container's files, the working directory, the terminal, capabilities cut to
/// `keep`, uid/gid switched, no_new_privs, the seccomp filter. Returns the completed
/// environment.
pub(crate) fn become_user(
    user_spec: &str,
    cwd: &str,
    env: &[String],
    privileged: bool,
    keep: &caps::CapsHashSet,
    seccomp: Option<&crate::seccomp::Filter>,
    console: Option<&OwnedFd>,
) -> Result<Vec<String>, Error> {
    let ids = user::resolve(
        user_spec,
        read_in_root("/etc/passwd")?.as_deref(),
        read_in_root("/etc/group")?.as_deref(),
    )?;
    rustix::process::chdir(cwd).map_err(|e| Error::Chdir {
        cwd: cwd.to_string(),
        source: errno(e),
    })?;
    if let Some(console) = console {
        crate::tty::adopt_new_pty(console, ids.uid, ids.gid)?;
    }
    caps::restrict_bounding(privileged, keep)?;
    let set_ids = || -> Result<(), Errno> {
        let groups: Vec<Gid> = ids.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        match nix::unistd::setgroups(&groups) {
            // Rootless with a single-id mapping: setgroups(2) is denied for good.
            Err(Errno::EPERM) if crate::rootless::setgroups_denied() => {}
            r => r?,
        }
        nix::unistd::setgid(Gid::from_raw(ids.gid))?;
        nix::unistd::setuid(Uid::from_raw(ids.uid))
    };
    set_ids().map_err(|source| match source {
        Errno::EINVAL if crate::rootless::in_user_namespace() => {
            crate::rootless::unmapped(ids.uid, ids.gid)
        }
        source => Error::SetIds {
            uid: ids.uid,
            gid: ids.gid,
            source,
        },
    })?;
    caps::restrict_sets(privileged, keep, ids.uid == 0)?;
    if !privileged {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(Error::NoNewPrivs {
                source: Errno::last(),
            });
        }
    }
    // Last: from here on only what the filter allows (rt_sigaction, close_range, execve).
    if let Some(filter) = seccomp {
        filter.load()?;
    }
    Ok(exec::complete_env(env, &ids.home))
}

/// Default signal state, nothing of bake's open, execve. Returns only on failure.
pub(crate) fn exec_command(args: &[String], env: &[String]) -> Error {
    reset_signals();
    // Nothing of bake's may leak into the container (the error fd is already CLOEXEC).
    // SAFETY: marks fds close-on-exec; no memory is involved.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    exec::execve(args, env)
}

/// The container starts with default dispositions and nothing blocked. An ignored
/// signal survives exec, and bake (as any Rust program) ignores SIGPIPE.
pub(crate) fn reset_signals() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Reads a file of the container (after pivot_root); `None` if it does not exist.
pub(crate) fn read_in_root(path: &str) -> Result<Option<String>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::ReadInRoot {
            path: path.into(),
            source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        }),
    }
}

/// Makes `new_root` the root of this mount namespace and detaches the old one.
/// `pivot_root(".", ".")` (as runc does) stacks the old root on the new one, so no
/// `put_old` directory has to be created in the rootfs (it would land in the layer).
fn pivot_into(new_root: &Path) -> Result<(), Error> {
    let fail = |source| Error::PivotRoot {
        root: new_root.to_path_buf(),
        source,
    };
    let dir = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(errno(e)))
    };
    let old = dir(Path::new("/"))?;
    let new = dir(new_root)?;
    rustix::process::fchdir(&new).map_err(|e| fail(errno(e)))?;
    rustix::process::pivot_root(".", ".").map_err(|e| fail(errno(e)))?;
    rustix::process::fchdir(&old).map_err(|e| fail(errno(e)))?;
    // The old root must not propagate its unmount anywhere.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(fail)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(fail)?;
    rustix::process::chdir("/").map_err(|e| fail(errno(e)))
}
