//! The program's own terminal. When `netev run` asks on the terminal, the
//! program must not be able to answer for the person: by typing into it
//! (`TIOCSTI`), by making the terminal type for it (a cursor-position or
//! colour query is answered on the terminal's input, where the answer key
//! is read), or by drawing over the question. So the program never gets
//! the real terminal:
//!
//! - [`Terminal::open`] opens the controlling terminal (`/dev/tty`) and a
//!   pty pair whose slave starts with the terminal's settings and size.
//! - [`Terminal::attach`] gives the program the slave: whichever of its
//!   stdin, stdout and stderr are that terminal (pipes and files stay as
//!   they were), and, in the child before exec, `setsid()` and
//!   `TIOCSCTTY`: the slave is its controlling terminal, its `/dev/tty`,
//!   and the only terminal `TIOCSTI` works on for it.
//! - [`Terminal::start`] puts the real terminal in raw mode and relays
//!   bytes both ways on a thread: keys to the pty, the program's output
//!   through [`OutputFilter`] (an allow-list of drawing sequences; every
//!   sequence that makes a terminal answer is dropped) to the terminal;
//!   the window size follows `SIGWINCH`. [`Running`] restores the terminal
//!   when dropped, and `SIGTERM`/`SIGHUP` restore it before netev dies.
//! - [`Terminal::prompt`] stops the relay for a question: the program's
//!   output waits in the pty (the program blocks once it is full; nothing
//!   is lost), the terminal's pending input is flushed (`TCIFLUSH`), and
//!   [`Prompt::read_key`] reads keys through [`KeyReader`], which skips
//!   every escape sequence and bracketed paste.

mod filter;

use filter::{KeyReader, OutputFilter};

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// The most the relay reads after the program has gone (output still in
/// the pty), so that a writer outside the tree cannot keep netev waiting.
const DRAIN_MAX: usize = 1 << 20;
/// Keys read ahead of a program that does not read its input.
const PENDING_MAX: usize = 64 << 10;

static WAKE_W: AtomicI32 = AtomicI32::new(-1);
static WINCH: AtomicBool = AtomicBool::new(false);
/// The terminal's settings before raw mode, for the signal handlers.
static SAVED: OnceLock<(RawFd, libc::termios)> = OnceLock::new();

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(r: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a fresh fd we own.
    cvt(r).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we hold.
    unsafe {
        let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    }
    Ok(())
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: a winsize buffer for the ioctls.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::SeqCst);
    wake_raw();
}

extern "C" fn on_fatal(sig: libc::c_int) {
    // SAFETY: tcsetattr, signal and raise are async-signal-safe.
    unsafe {
        if let Some((fd, t)) = SAVED.get() {
            libc::tcsetattr(*fd, libc::TCSANOW, t);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn wake_raw() {
    let fd = WAKE_W.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: one byte to our own pipe (non-blocking: a full pipe
        // already wakes the relay).
        unsafe { libc::write(fd, [0u8].as_ptr().cast(), 1) };
    }
}

#[derive(Default)]
struct RelayState {
    /// A question wants the terminal.
    pause: bool,
    /// The relay is stopped for it.
    parked: bool,
    /// The relay should drain and end.
    stop: bool,
    /// The relay thread runs.
    running: bool,
}

struct Inner {
    tty: File,
    master: OwnedFd,
    saved: libc::termios,
    state: Mutex<RelayState>,
    cv: Condvar,
    wake_r: OwnedFd,
    wake_w: OwnedFd,
}

impl Inner {
    fn wake(&self) {
        // SAFETY: one byte to our own non-blocking pipe.
        unsafe { libc::write(self.wake_w.as_raw_fd(), [0u8].as_ptr().cast(), 1) };
    }

    fn restore(&self) {
        // SAFETY: the settings tcgetattr gave us.
        unsafe { libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSANOW, &self.saved) };
    }

    fn write_tty(&self, mut data: &[u8]) {
        while !data.is_empty() {
            match (&self.tty).write(data) {
                Ok(0) => return,
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // the terminal is gone: nobody to show it to
                Err(_) => return,
            }
        }
    }
}

/// The real terminal, kept from the program, and the pty it gets instead.
pub struct Terminal {
    inner: Arc<Inner>,
    slave: Mutex<Option<OwnedFd>>,
    relay: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The relay running; dropping it drains the program's last output,
/// stops the relay and restores the terminal.
pub struct Running<'a>(&'a Terminal);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

impl Terminal {
    /// The controlling terminal and a fresh pty for the program; `None`
    /// when this process has no controlling terminal.
    pub fn open() -> io::Result<Option<Terminal>> {
        let tty = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
        {
            Ok(t) => t,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENOENT)) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        // SAFETY: a termios buffer for tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        cvt(unsafe { libc::tcgetattr(tty.as_raw_fd(), &mut saved) })?;
        // SAFETY: plain syscalls returning new fds.
        let master =
            owned(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
        // SAFETY: on the master we just opened.
        unsafe {
            cvt(libc::grantpt(master.as_raw_fd()))?;
            cvt(libc::unlockpt(master.as_raw_fd()))?;
        }
        // The slave by its master (no path to race on).
        // SAFETY: TIOCGPTPEER returns a new fd.
        let slave = owned(unsafe {
            libc::ioctl(
                master.as_raw_fd(),
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        })?;
        // The program's terminal starts as the person's: cooked, same size.
        // SAFETY: the settings tcgetattr gave us.
        cvt(unsafe { libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &saved) })?;
        copy_winsize(tty.as_raw_fd(), master.as_raw_fd());
        set_nonblocking(master.as_raw_fd())?;
        let mut p = [0; 2];
        // SAFETY: p is valid for two ints.
        cvt(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
        // SAFETY: two fresh fds we own.
        let (wake_r, wake_w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        Ok(Some(Terminal {
            inner: Arc::new(Inner {
                tty,
                master,
                saved,
                state: Mutex::new(RelayState::default()),
                cv: Condvar::new(),
                wake_r,
                wake_w,
            }),
            slave: Mutex::new(Some(slave)),
            relay: Mutex::new(None),
        }))
    }

    /// Gives `cmd` the pty: its stdin, stdout and stderr that are the
    /// terminal (and left inherited by `cmd`) become the slave, and before
    /// exec the child starts a session of its own with the slave as its
    /// controlling terminal. Call before spawning; then [`Terminal::start`].
    pub fn attach(&self, cmd: &mut Command) -> io::Result<()> {
        let slave = self.slave.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slave) = slave.as_ref() else {
            return Err(io::Error::other("the pty was already handed over"));
        };
        // tcgetsid succeeds only on our controlling terminal (an fstat
        // of our /dev/tty fd would name /dev/tty, not the terminal).
        // SAFETY: tcgetsid on a descriptor number.
        let is_tty = |fd: RawFd| unsafe { libc::tcgetsid(fd) } >= 0;
        if is_tty(0) {
            cmd.stdin(Stdio::from(slave.try_clone()?));
        }
        if is_tty(1) {
            cmd.stdout(Stdio::from(slave.try_clone()?));
        }
        if is_tty(2) {
            cmd.stderr(Stdio::from(slave.try_clone()?));
        }
        let fd = slave.as_raw_fd();
        // SAFETY: setsid and ioctl are async-signal-safe; `fd` is open in
        // the child until exec (close-on-exec).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// After the spawn: the real terminal in raw mode, the relay running.
    pub fn start(&self) -> io::Result<Running<'_>> {
        let inner = &self.inner;
        let fd = inner.tty.as_raw_fd();
        let mut raw = inner.saved;
        // SAFETY: on our copy of the settings.
        unsafe { libc::cfmakeraw(&mut raw) };
        let _ = SAVED.set((fd, inner.saved));
        WAKE_W.store(inner.wake_w.as_raw_fd(), Ordering::SeqCst);
        // SAFETY: handlers that only make async-signal-safe calls.
        unsafe {
            for (sig, h) in [
                (libc::SIGWINCH, on_winch as extern "C" fn(libc::c_int)),
                (libc::SIGTERM, on_fatal),
                (libc::SIGHUP, on_fatal),
            ] {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = h as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
            cvt(libc::tcsetattr(fd, libc::TCSANOW, &raw))?;
        }
        // The program holds its copies; ours would keep the pty open after
        // it is gone.
        drop(self.slave.lock().unwrap_or_else(|p| p.into_inner()).take());
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running = true;
        let inner = Arc::clone(&self.inner);
        let h = std::thread::Builder::new()
            .name("netev-tty".into())
            .spawn(move || relay(&inner))?;
        *self.relay.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        Ok(Running(self))
    }

    fn finish(&self) {
        {
            let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            st.stop = true;
            self.inner.cv.notify_all();
        }
        self.inner.wake();
        if let Some(h) = self.relay.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        self.inner.restore();
    }

    /// Takes the terminal for a question: the relay stops (the program's
    /// output waits), pending input is flushed, attributes are reset so
    /// the question is visible. One prompt at a time; dropping it gives
    /// the terminal back to the program.
    pub fn prompt(&self) -> Prompt<'_> {
        let inner = &self.inner;
        {
            let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            st.pause = true;
            inner.wake();
            while st.running && !st.parked {
                st = inner.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        // SAFETY: on our terminal fd.
        unsafe { libc::tcflush(inner.tty.as_raw_fd(), libc::TCIFLUSH) };
        // Plain attributes, cursor shown, at the start of a fresh line.
        inner.write_tty(b"\x1b[0m\x1b[?25h\r\n");
        Prompt {
            t: self,
            keys: KeyReader::default(),
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self
            .relay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            self.finish();
        }
    }
}

/// The terminal, taken for one question.
pub struct Prompt<'a> {
    t: &'a Terminal,
    keys: KeyReader,
}

impl Prompt<'_> {
    /// Shows text (`\r\n` for a new line: the terminal is raw).
    pub fn write(&self, s: &str) {
        self.t.inner.write_tty(s.as_bytes());
    }

    /// The next key typed on its own within `timeout`; bytes of escape
    /// sequences (terminal reports, function keys) and of bracketed pastes
    /// are skipped. `Ok(None)`: no key yet; an error: the terminal is gone.
    pub fn read_key(&mut self, timeout: Duration) -> io::Result<Option<u8>> {
        let fd = self.t.inner.tty.as_raw_fd();
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe {
            libc::poll(
                &mut pfd,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if r <= 0 {
            return Ok(None);
        }
        let mut buf = [0u8; 64];
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            let e = io::Error::last_os_error();
            if n < 0 && matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
                return Ok(None);
            }
            return Err(if n == 0 {
                io::Error::from(io::ErrorKind::UnexpectedEof)
            } else {
                e
            });
        }
        Ok(buf[..n as usize].iter().find_map(|b| self.keys.feed(*b)))
    }
}

impl Drop for Prompt<'_> {
    fn drop(&mut self) {
        let inner = &self.t.inner;
        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        st.pause = false;
        inner.cv.notify_all();
    }
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The relay: keys to the pty, filtered output to the terminal, until the
/// program's side is closed or [`Terminal::finish`].
fn relay(inner: &Inner) {
    let (tty, master, wake) = (
        inner.tty.as_raw_fd(),
        inner.master.as_raw_fd(),
        inner.wake_r.as_raw_fd(),
    );
    let mut filter = OutputFilter::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    let mut tty_open = true;
    loop {
        {
            let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            while st.pause && !st.stop {
                st.parked = true;
                inner.cv.notify_all();
                st = inner.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.parked = false;
            if st.stop {
                break;
            }
        }
        let mut fds = [
            libc::pollfd {
                fd: wake,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if tty_open && pending.len() < PENDING_MAX {
                    tty
                } else {
                    -1
                },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: master,
                events: libc::POLLIN | if pending.is_empty() { 0 } else { libc::POLLOUT },
                revents: 0,
            },
        ];
        // SAFETY: three valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            while read_fd(wake, &mut buf).is_ok_and(|n| n > 0) {}
            if WINCH.swap(false, Ordering::SeqCst) {
                copy_winsize(tty, master);
            }
            // a pause or stop request is seen at the top of the loop
            continue;
        }
        if fds[1].revents != 0 {
            match read_fd(tty, &mut buf) {
                Ok(0) => tty_open = false,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => tty_open = false,
            }
        }
        if !pending.is_empty() {
            // SAFETY: pending is valid for its length; master is non-blocking.
            let n = unsafe { libc::write(master, pending.as_ptr().cast(), pending.len()) };
            if n > 0 {
                pending.drain(..n as usize);
            }
        }
        if fds[2].revents != 0 {
            match read_fd(master, &mut buf) {
                Ok(0) => break,
                Ok(n) => inner.write_tty(&filter.feed(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                // EIO: no slave left open, the program's side is gone
                Err(_) => break,
            }
        }
    }
    // What the program wrote before it went.
    let mut drained = 0;
    while drained < DRAIN_MAX {
        match read_fd(master, &mut buf) {
            Ok(n) if n > 0 => {
                drained += n;
                inner.write_tty(&filter.feed(&buf[..n]));
            }
            _ => break,
        }
    }
    let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
    st.running = false;
    inner.cv.notify_all();
}
