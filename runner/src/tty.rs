//! `bake run -t`: a pseudo-terminal between the caller's terminal and the container.
//!
//! The pty is allocated *inside* the sandbox, from the container's own devpts instance
//! (after pivot_root), so that `/dev/pts/N` and `tty` make sense in there; the master is
//! passed back over a unix socket (SCM_RIGHTS), as runc's console socket does. The
//! caller's side relays: its stdin → master, master → its stdout, in raw mode while the
//! container runs (restored on every path out, by a guard).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};
use rustix::termios::Winsize;

use crate::Error;

fn pty_error(what: &'static str) -> impl Fn(io::Error) -> Error {
    move |source| Error::Pty {
        what: what.into(),
        source,
    }
}

fn stdin() -> BorrowedFd<'static> {
    rustix::stdio::stdin()
}

fn stdout() -> BorrowedFd<'static> {
    rustix::stdio::stdout()
}

/// The caller's terminal size, from stdout or else stdin.
fn window_size() -> Option<Winsize> {
    rustix::termios::tcgetwinsize(stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(stdin()))
        .ok()
}

/// Sends `fd` over the unix socket `sock`.
fn send_fd(sock: &OwnedFd, fd: &OwnedFd) -> Result<(), Errno> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: the control buffer is sized with CMSG_SPACE for one int and outlives the
    // sendmsg call; CMSG_FIRSTHDR of it is non-null.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let mut control = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        if libc::sendmsg(sock.as_raw_fd(), &msg, 0) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Receives an fd sent with [`send_fd`]; `None` on EOF (the sandbox exec'd or died
/// without allocating a terminal: its error report says why).
pub(crate) fn receive_master(sock: &OwnedFd) -> Result<Option<OwnedFd>, Error> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: as in send_fd; the received fd is owned by nobody else.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let mut control = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = loop {
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || Errno::last() != Errno::EINTR {
                break n;
            }
        };
        if n < 0 {
            return Err(pty_error("receiving the terminal from the sandbox")(
                io::Error::last_os_error(),
            ));
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// In the sandbox, after pivot_root: opens a pty from the container's `/dev/ptmx`, makes
/// its slave (owned by `uid`/`gid`) the controlling terminal and stdio of this process,
/// and sends the master to `run` over `sock`.
pub(crate) fn adopt_new_pty(sock: &OwnedFd, uid: u32, gid: u32) -> Result<(), Error> {
    let fail = |source| Error::ControllingTerminal { source };
    let master = rustix::fs::open(
        "/dev/ptmx",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| fail(crate::mounts::apply::errno(e)))?;
    rustix::pty::unlockpt(&master).map_err(|e| fail(crate::mounts::apply::errno(e)))?;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY,
    )
    .map_err(|e| fail(crate::mounts::apply::errno(e)))?;
    let _ = rustix::fs::fchown(
        &slave,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
    // SAFETY: plain syscalls on fds this process owns.
    unsafe {
        if libc::setsid() < 0 || libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) < 0 {
            return Err(fail(Errno::last()));
        }
        for target in 0..3 {
            if libc::dup2(slave.as_raw_fd(), target) < 0 {
                return Err(fail(Errno::last()));
            }
        }
    }
    send_fd(sock, &master).map_err(fail)
}

/// Sizes the container's terminal like the caller's.
pub(crate) fn copy_window_size(master: &OwnedFd) {
    if let Some(size) = window_size() {
        let _ = rustix::termios::tcsetwinsize(master, size);
    }
}

/// The caller's terminal in raw mode; restored on drop.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin if it is a terminal.
    fn enter() -> Option<RawMode> {
        let saved = termios::tcgetattr(stdin()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(stdin(), SetArg::TCSAFLUSH, &self.saved);
    }
}

fn write_all(fd: impl AsFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(&fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Copies stdin → `master` and `master` → stdout until the container side of the pty is
/// closed (the read on the master fails with EIO). The window size is re-read every
/// 200 ms and pushed to the pty when it changed (which makes the kernel send SIGWINCH
/// to the container): polling instead of a SIGWINCH handler keeps a library from
/// installing process-wide signal handlers.
pub(crate) fn relay(master: &OwnedFd) -> Result<(), Error> {
    let _raw = RawMode::enter();
    let mut size = window_size();
    let mut stdin_open = true;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(pty_error("poll")(e.into())),
        }
        let master_ready = fds[0].any().unwrap_or(false);
        let stdin_ready = stdin_open && fds[1].any().unwrap_or(false);
        drop(fds);

        let now = window_size();
        if now.is_some() && now.map(|w| (w.ws_row, w.ws_col)) != size.map(|w| (w.ws_row, w.ws_col))
        {
            if let Some(w) = now {
                let _ = rustix::termios::tcsetwinsize(master, w);
            }
            size = now;
        }

        if master_ready {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => return Ok(()),
                Ok(n) => write_all(stdout(), &buf[..n]).map_err(pty_error("writing to stdout"))?,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(pty_error("reading the pty")(e.into())),
            }
        }
        if stdin_ready {
            match rustix::io::read(stdin(), &mut buf) {
                Ok(0) => {
                    // Like a user typing ^D: the container's reader sees end of input.
                    stdin_open = false;
                    let _ = write_all(master, &[4]);
                }
                Ok(n) => {
                    // The container may be gone already: its exit ends the loop anyway.
                    let _ = write_all(master, &buf[..n]);
                }
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}
