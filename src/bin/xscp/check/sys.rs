//! The two things std cannot do and the checker needs: connect *from* a chosen loopback
//! address (127.0.0.2 is "another IP" for holds and per-IP limits, PROTOCOL.md §5.7, §7)
//! and send SIGTERM to a server it started (§7 shutdown). Both are plain libc calls, which
//! std links anyway; declared here rather than pulling in a crate (the runtime dependencies
//! are fixed). Linux only; elsewhere they report that they cannot.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::c_int;

    /// `struct sockaddr_in` on Linux.
    #[repr(C)]
    pub struct SockaddrIn {
        pub family: u16,
        /// Network byte order.
        pub port: u16,
        /// Network byte order.
        pub addr: u32,
        pub zero: [u8; 8],
    }

    pub const AF_INET: c_int = 2;
    pub const SOCK_STREAM: c_int = 1;
    pub const SOCK_CLOEXEC: c_int = 0o2_000_000;
    pub const SIGTERM: c_int = 15;

    unsafe extern "C" {
        pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
        pub fn bind(fd: c_int, addr: *const SockaddrIn, len: u32) -> c_int;
        pub fn connect(fd: c_int, addr: *const SockaddrIn, len: u32) -> c_int;
        pub fn close(fd: c_int) -> c_int;
        pub fn kill(pid: c_int, sig: c_int) -> c_int;
    }

    pub fn sockaddr(a: std::net::SocketAddrV4) -> SockaddrIn {
        SockaddrIn {
            family: AF_INET as u16,
            port: a.port().to_be(),
            addr: u32::from(*a.ip()).to_be(),
            zero: [0; 8],
        }
    }
}

/// Connects to `to` from the address `from` (any port).
#[cfg(target_os = "linux")]
pub fn connect_from(from: Ipv4Addr, to: SocketAddrV4) -> io::Result<TcpStream> {
    use linux::*;
    use std::os::fd::FromRawFd;
    let len = std::mem::size_of::<SockaddrIn>() as u32;
    // SAFETY: plain system calls on a descriptor this function owns; the addresses are
    // valid `sockaddr_in` values that outlive the calls. The descriptor is either closed
    // here on error or handed to exactly one `TcpStream`, which closes it.
    unsafe {
        let fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let local = sockaddr(SocketAddrV4::new(from, 0));
        let remote = sockaddr(to);
        if bind(fd, &local, len) != 0 || connect(fd, &remote, len) != 0 {
            let e = io::Error::last_os_error();
            close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

#[cfg(not(target_os = "linux"))]
pub fn connect_from(_from: Ipv4Addr, _to: SocketAddrV4) -> io::Result<TcpStream> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "connecting from a chosen address is only implemented on Linux",
    ))
}

/// Sends SIGTERM to the process `pid`.
#[cfg(target_os = "linux")]
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) with a pid of a child this program started and has not reaped.
    if unsafe { linux::kill(pid, linux::SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn terminate(_pid: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SIGTERM is only implemented on Linux",
    ))
}

/// Is something listening on TCP `port` (IPv4 or IPv6)? `None` when the system does not
/// say (no /proc): the caller then probes with a connection.
pub fn listening(port: u16) -> Option<bool> {
    let mut known = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        known = true;
        let hit = text.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address is ADDR:PORT in hex; state 0A is LISTEN.
            f.len() > 3
                && f[3] == "0A"
                && f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        });
        if hit {
            return Some(true);
        }
    }
    known.then_some(false)
}
