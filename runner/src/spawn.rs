//! [`run`], [`run_with`], [`start`] and [`exec`]: start the sandbox process, hand it
//! the job, relay its output, wait (or, for [`start`], do not).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustix::pipe::{pipe_with, PipeFlags};

use crate::mounts::plan::validate;
use crate::sandbox::{Job, Request};
use crate::{tty, Error, Exec, Exit, Options, Plan, Stdio, Stream, SANDBOX_ARG};

const SELF_EXE: &str = "/proc/self/exe";

fn channel(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |source| Error::Channel {
        what: what.into(),
        source,
    }
}

/// Runs `plan` in a new sandbox and waits for it.
///
/// Re-executes the current binary (`/proc/self/exe SANDBOX_ARG <plan-fd> <error-fd>`),
/// whose `main` must hand over to [`crate::sandbox_main`]. The plan travels as JSON on
/// its own pipe, so the container's stdin stays free (`bake run -i`); setup errors come
/// back as JSON on a close-on-exec pipe, whose EOF without data means the command was
/// exec'd. With [`Stdio::Piped`], stdout and stderr chunks are passed to `output` as
/// they arrive, on the calling thread; the other modes never call it.
///
/// # Errors
/// Any setup failure of the sandbox, typed ([`Error::MountOverlay`],
/// [`Error::PivotRoot`], [`Error::UserNotFound`], …), [`Error::NotFound`] and
/// [`Error::NotExecutable`] for the command itself, and [`Error::Spawn`],
/// [`Error::Channel`], [`Error::Pty`] for failures on this side.
pub fn run(
    plan: &Plan,
    stdio: Stdio,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<Exit, Error> {
    run_with(plan, &Options::default(), stdio, output)
}

/// [`run`] with container-only [`Options`] (`bake run`: `--init`, capabilities,
/// limits, the state file).
///
/// # Errors
/// As [`run`], plus [`Error::CgroupController`] and [`Error::Cgroup`] for limits.
pub fn run_with(
    plan: &Plan,
    options: &Options,
    stdio: Stdio,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<Exit, Error> {
    validate(plan)?;
    crate::network::check(plan, options)?;
    crate::rootless::check_options(plan, options)?;
    let request = Request {
        job: Job::Run {
            plan: plan.clone(),
            options: options.clone(),
        },
        tty: stdio == Stdio::Tty,
        detached: false,
        copy: crate::copy_view::sandbox_copies(&plan.rootfs.work)?,
    };
    let (child, master) = launch(&request, stdio, None)?;
    finish(child, stdio, master, output)
}

/// Starts `plan` detached (`bake run -d`) and returns the supervisor's pid once the
/// command runs. The sandbox gets its own session, `/dev/null` as stdin and `log` (a
/// file opened for appending) as stdout and stderr, and outlives the caller; its
/// supervisor records the exit in [`Options::state_file`].
///
/// # Errors
/// As [`run_with`].
pub fn start(plan: &Plan, options: &Options, log: std::fs::File) -> Result<u32, Error> {
    validate(plan)?;
    crate::network::check(plan, options)?;
    crate::rootless::check_options(plan, options)?;
    let request = Request {
        job: Job::Run {
            plan: plan.clone(),
            options: options.clone(),
        },
        tty: false,
        detached: true,
        copy: crate::copy_view::sandbox_copies(&plan.rootfs.work)?,
    };
    let (child, _) = launch(&request, Stdio::Null, Some(log))?;
    // Not waited for: it is re-parented to init when this process exits.
    Ok(child.id())
}

/// Runs a command in the running container whose pid 1 is `exec.pid` (`bake exec`) and
/// waits for it; stdio as for [`run`].
///
/// # Errors
/// [`Error::JoinNamespace`] when the container is gone, and the errors of [`run`].
pub fn exec(
    exec: &Exec,
    stdio: Stdio,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<Exit, Error> {
    if exec.args.is_empty() {
        return Err(Error::InvalidPlan {
            message: "no command (argv is empty)".into(),
        });
    }
    let request = Request {
        job: Job::Exec(exec.clone()),
        tty: stdio == Stdio::Tty,
        detached: false,
        copy: false,
    };
    let (child, master) = launch(&request, stdio, None)?;
    finish(child, stdio, master, output)
}

/// Spawns the sandbox process with `request`, waits until its command runs (or fails
/// to) and returns it with the terminal's master in Tty mode. `detach_log`: start it in
/// its own session with this file as stdout and stderr.
fn launch(
    request: &Request,
    stdio: Stdio,
    detach_log: Option<std::fs::File>,
) -> Result<(Child, Option<OwnedFd>), Error> {
    let request = serde_json::to_vec(request).map_err(|e| Error::InvalidPlan {
        message: format!("encoding the plan: {e}"),
    })?;
    // Close-on-exec at creation: another thread of bake may fork and exec at any time,
    // and must not inherit them. Only our child clears the flag, between its fork and
    // exec (pre_exec below).
    let (plan_read, plan_write) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| channel("creating the plan pipe")(e.into()))?;
    let (err_read, err_write) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| channel("creating the error pipe")(e.into()))?;

    // Tty mode: the sandbox allocates the terminal and sends its master back on this.
    let console = if stdio == Stdio::Tty {
        Some(socket_pair().map_err(pty_error("creating the console socket"))?)
    } else {
        None
    };

    let mut command = Command::new(SELF_EXE);
    command
        .arg(SANDBOX_ARG)
        .arg(plan_read.as_raw_fd().to_string())
        .arg(err_write.as_raw_fd().to_string())
        .env_clear();
    let mut inherited = vec![plan_read.as_raw_fd(), err_write.as_raw_fd()];
    if let Some((_, theirs)) = &console {
        command.arg(theirs.as_raw_fd().to_string());
        inherited.push(theirs.as_raw_fd());
    }
    let detached = detach_log.is_some();
    // SAFETY: the closure only calls fcntl(2) and setsid(2), which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            for &fd in &inherited {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // A detached container must not get the caller's terminal signals.
            if detached && libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match stdio {
        _ if detach_log.is_some() => {
            if let Some(log) = detach_log {
                let err_log = log.try_clone().map_err(channel("duplicating the log fd"))?;
                command
                    .stdin(std::process::Stdio::null())
                    .stdout(log)
                    .stderr(err_log);
            }
        }
        Stdio::Inherit => {}
        // With a Tty, the container's stdio will be a pty; the supervisor needs none.
        Stdio::Null | Stdio::Tty => {
            command
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        }
        Stdio::Piped => {
            command
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
        }
    }
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        exe: PathBuf::from(SELF_EXE),
        source,
    })?;
    // Our copies of the child's ends must go, or the EOFs we wait for never come.
    drop(command);
    drop(plan_read);
    drop(err_write);
    let console = console.map(|(ours, _theirs)| ours);

    // A write error means the sandbox died early; its report or status says why.
    let _ = std::fs::File::from(plan_write).write_all(&request);

    // Before the error report: the sandbox sends the master just before exec, or the
    // socket reaches EOF when it fails earlier.
    let master = match &console {
        Some(sock) => tty::receive_master(sock)?,
        None => None,
    };
    drop(console);

    let mut report = Vec::new();
    std::fs::File::from(err_read)
        .read_to_end(&mut report)
        .map_err(channel("reading the sandbox's error report"))?;
    if !report.is_empty() {
        let _ = child.wait();
        return Err(
            serde_json::from_slice(&report).unwrap_or_else(|_| Error::BadReport {
                report: String::from_utf8_lossy(&report).into_owned(),
            }),
        );
    }
    Ok((child, master))
}

/// Relays the command's stdio (Piped, Tty) until it ends, then waits for the sandbox.
fn finish(
    mut child: Child,
    stdio: Stdio,
    master: Option<OwnedFd>,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<Exit, Error> {
    let relayed = match (stdio, master) {
        (Stdio::Piped, _) => pump(&mut child, output),
        (Stdio::Tty, Some(master)) => {
            tty::copy_window_size(&master);
            tty::relay(&master)
        }
        _ => Ok(()),
    };
    let status = child
        .wait()
        .map_err(channel("waiting for the sandbox process"))?;
    relayed?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(125),
    })
}

fn pty_error(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |source| Error::Pty {
        what: what.into(),
        source,
    }
}

/// A close-on-exec unix stream socket pair: (ours, the sandbox's).
fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two fds into the array, which we then own.
    unsafe {
        if libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Passes stdout and stderr to `output` as they come, until both are closed.
fn pump(child: &mut Child, output: &mut dyn FnMut(Stream, &[u8])) -> Result<(), Error> {
    let mut streams: Vec<(Stream, OwnedFd)> = Vec::new();
    if let Some(out) = child.stdout.take() {
        streams.push((Stream::Stdout, out.into()));
    }
    if let Some(err) = child.stderr.take() {
        streams.push((Stream::Stderr, err.into()));
    }
    let mut buf = vec![0u8; 64 * 1024];
    while !streams.is_empty() {
        let mut fds: Vec<PollFd> = streams
            .iter()
            .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(channel("polling the output pipes")(e.into())),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        let mut closed = Vec::new();
        for (i, (stream, fd)) in streams.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => closed.push(i),
                Ok(n) => output(*stream, &buf[..n]),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(channel("reading the output pipes")(e.into())),
            }
        }
        for i in closed.into_iter().rev() {
            streams.remove(i);
        }
    }
    Ok(())
}
