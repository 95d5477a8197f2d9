//! Ring-buffer records (`struct netev_hdr`, `netev_event`, `netev_exec`)
//! and their decoding.
//!
//! Layouts are asserted at compile time here, and compared field by field
//! with the BTF clang emitted for the C structs in netev-bpf's tests.

use bytemuck::{Pod, Zeroable};

use crate::{COMM_LEN, KIND_EXEC, KIND_EXIT, KIND_NET, PATH_LEN};

/// `struct netev_hdr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq, Eq)]
pub struct RawHdr {
    /// Record kind.
    pub kind: u8,
    /// `enum netev_op`.
    pub op: u8,
    /// `enum netev_verdict`.
    pub verdict: u8,
    /// `NETEV_F_*`.
    pub flags: u8,
    /// Thread group id.
    pub pid: u32,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

/// `struct netev_event`: one network operation.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq, Eq)]
pub struct RawEvent {
    /// Common header.
    pub hdr: RawHdr,
    /// Thread id.
    pub tid: u32,
    /// Parent's thread group id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Inode of the executable.
    pub app_ino: u64,
    /// Kernel dev_t of the executable's file system.
    pub app_dev: u32,
    /// Calls this record stands for.
    pub count: u32,
    /// Syscall return value, if `hdr.flags & F_HAS_RET`.
    pub ret: i32,
    /// Rule that decided, 0 for none.
    pub rule_id: u32,
    /// AF_*.
    pub family: u16,
    /// SOCK_*.
    pub sock_type: u16,
    /// IPPROTO_*.
    pub protocol: u16,
    /// Local port, host order.
    pub lport: u16,
    /// Remote port, host order.
    pub rport: u16,
    /// Padding.
    pub _pad0: u16,
    /// Local address (IPv4 in the first 4 bytes).
    pub laddr: [u8; 16],
    /// Remote address.
    pub raddr: [u8; 16],
    /// Task command name, NUL padded.
    pub comm: [u8; COMM_LEN],
    /// Padding.
    pub _pad1: u32,
}

/// `struct netev_exec`: a process exec'ed.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawExec {
    /// Common header.
    pub hdr: RawHdr,
    /// Parent's thread group id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Inode of the new executable.
    pub app_ino: u64,
    /// Kernel dev_t of its file system.
    pub app_dev: u32,
    /// Bytes of `filename` used, including the NUL.
    pub filename_len: u32,
    /// Task command name.
    pub comm: [u8; COMM_LEN],
    /// The path passed to execve(), possibly relative.
    pub filename: [u8; PATH_LEN],
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<RawHdr>() == 16);
    assert!(size_of::<RawEvent>() == 120);
    assert!(offset_of!(RawEvent, app_ino) == 32);
    assert!(offset_of!(RawEvent, family) == 56);
    assert!(offset_of!(RawEvent, laddr) == 68);
    assert!(offset_of!(RawEvent, comm) == 100);
    assert!(size_of::<RawExec>() == 312);
    assert!(offset_of!(RawExec, filename) == 56);
};

/// One decoded ring-buffer record.
#[derive(Debug, Clone)]
pub enum Record {
    /// A network operation.
    Net(RawEvent),
    /// An exec (boxed: it carries a path buffer).
    Exec(Box<RawExec>),
    /// A process exit.
    Exit {
        /// Thread group id.
        pid: u32,
        /// CLOCK_MONOTONIC nanoseconds.
        ts_ns: u64,
    },
}

/// A record that does not match the ABI: a bug, never user input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AbiError {
    /// Shorter than its kind requires.
    #[error("record of kind {kind} is {len} bytes, expected at least {need}")]
    Short {
        /// Record kind.
        kind: u8,
        /// Bytes received.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// Unknown kind byte.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// Empty record.
    #[error("empty record")]
    Empty,
}

fn read<T: Pod>(kind: u8, bytes: &[u8]) -> Result<T, AbiError> {
    let need = std::mem::size_of::<T>();
    let raw = bytes.get(..need).ok_or(AbiError::Short {
        kind,
        len: bytes.len(),
        need,
    })?;
    // Ring-buffer samples are 8-byte aligned, but a copy of ~120 bytes is
    // cheaper than proving that to the type system.
    Ok(bytemuck::pod_read_unaligned(raw))
}

/// Decodes one ring-buffer sample.
pub fn decode(bytes: &[u8]) -> Result<Record, AbiError> {
    let kind = *bytes.first().ok_or(AbiError::Empty)?;
    match kind {
        KIND_NET => Ok(Record::Net(read(kind, bytes)?)),
        KIND_EXEC => Ok(Record::Exec(Box::new(read(kind, bytes)?))),
        KIND_EXIT => {
            let hdr: RawHdr = read(kind, bytes)?;
            Ok(Record::Exit {
                pid: hdr.pid,
                ts_ns: hdr.ts_ns,
            })
        }
        other => Err(AbiError::UnknownKind(other)),
    }
}

/// The bytes of a NUL-terminated C string buffer, without the NUL.
pub fn c_bytes(buf: &[u8]) -> &[u8] {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..end]
}

impl RawExec {
    /// The execve() path, lossily decoded.
    pub fn filename(&self) -> String {
        String::from_utf8_lossy(c_bytes(&self.filename)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_net_event() {
        let mut ev = RawEvent::zeroed();
        ev.hdr.kind = KIND_NET;
        ev.hdr.op = 4;
        ev.hdr.pid = 42;
        ev.rport = 443;
        ev.raddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let bytes = bytemuck::bytes_of(&ev);
        match decode(bytes).unwrap() {
            Record::Net(got) => assert_eq!(got, ev),
            other => panic!("expected Net, got {other:?}"),
        }
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert_eq!(decode(&[]).unwrap_err(), AbiError::Empty);
        assert_eq!(
            decode(&[KIND_NET, 0, 0]).unwrap_err(),
            AbiError::Short {
                kind: KIND_NET,
                len: 3,
                need: 120
            }
        );
        assert_eq!(decode(&[9; 16]).unwrap_err(), AbiError::UnknownKind(9));
    }

    #[test]
    fn decodes_exit_and_exec() {
        let mut hdr = RawHdr::zeroed();
        hdr.kind = KIND_EXIT;
        hdr.pid = 7;
        hdr.ts_ns = 99;
        assert!(matches!(
            decode(bytemuck::bytes_of(&hdr)).unwrap(),
            Record::Exit { pid: 7, ts_ns: 99 }
        ));
        let mut ex = RawExec::zeroed();
        ex.hdr.kind = KIND_EXEC;
        ex.filename[..9].copy_from_slice(b"/bin/true");
        match decode(bytemuck::bytes_of(&ex)).unwrap() {
            Record::Exec(e) => assert_eq!(e.filename(), "/bin/true"),
            other => panic!("expected Exec, got {other:?}"),
        }
    }
}
