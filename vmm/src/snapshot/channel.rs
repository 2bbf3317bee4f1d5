//! The stream a snapshot travels through: a file, or a pipe to or from a shell command
//! (`exec:`). A confined VMM gets both from the broker (`sandbox::broker`); before the
//! filters are on (`-incoming` at start-up, `-sandbox off`) it opens and spawns itself.
use super::uri::MigrationUri;
use crate::sandbox::broker::{Broker, BrokerError, Running};
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("exec:{command}: the command exited with status {status}")]
    Command { command: String, status: i32 },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ChannelError {
    let what = what.into();
    move |source| ChannelError::Io { what, source }
}

/// Which way the stream goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `migrate`: minnow writes.
    Save,
    /// `-incoming`: minnow reads.
    Restore,
}

enum Waiter<'a> {
    None,
    Broker(Running<'a>, String),
    Child(Child, String),
}

/// An open stream: `file` is what minnow reads or writes.
pub struct Channel<'a> {
    pub file: File,
    waiter: Waiter<'a>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just created and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

impl<'a> Channel<'a> {
    /// Opens `uri` for `direction`, through `broker` when there is one.
    pub fn open(
        uri: &MigrationUri,
        direction: Direction,
        broker: Option<&'a Broker>,
    ) -> Result<Self, ChannelError> {
        match uri {
            MigrationUri::File(path) => {
                let file = open_file(path, direction, broker)?;
                Ok(Self {
                    file,
                    waiter: Waiter::None,
                })
            }
            MigrationUri::Exec(command) => spawn(command, direction, broker),
        }
    }

    /// Closes the stream and waits for the command, if any: one that failed is an error.
    pub fn finish(self) -> Result<(), ChannelError> {
        drop(self.file);
        let (status, command) = match self.waiter {
            Waiter::None => return Ok(()),
            Waiter::Broker(running, command) => (running.wait()?, command),
            Waiter::Child(mut child, command) => {
                let status = child.wait().map_err(io_err(format!("exec:{command}")))?;
                let code = status.code().unwrap_or_else(|| {
                    128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
                });
                (code, command)
            }
        };
        match status {
            0 => Ok(()),
            status => Err(ChannelError::Command { command, status }),
        }
    }
}

fn open_file(
    path: &std::path::Path,
    direction: Direction,
    broker: Option<&Broker>,
) -> Result<File, ChannelError> {
    let what = || format!("file:{}", path.display());
    let flags = match direction {
        Direction::Save => libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        Direction::Restore => libc::O_RDONLY,
    };
    if let Some(broker) = broker {
        let text = path.to_str().ok_or_else(|| ChannelError::Io {
            what: what(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path is not UTF-8"),
        })?;
        return Ok(File::from(broker.open(text, flags)?));
    }
    std::fs::OpenOptions::new()
        .read(direction == Direction::Restore)
        .write(direction == Direction::Save)
        .create(direction == Direction::Save)
        .truncate(direction == Direction::Save)
        .mode(0o600)
        .open(path)
        .map_err(io_err(what()))
}

fn spawn<'a>(
    command: &str,
    direction: Direction,
    broker: Option<&'a Broker>,
) -> Result<Channel<'a>, ChannelError> {
    let what = || format!("exec:{command}");
    let (read, write) = pipe().map_err(io_err(what()))?;
    if let Some(broker) = broker {
        // As QEMU's: the command's other standard stream is /dev/null.
        let null = broker.open("/dev/null", libc::O_RDWR)?;
        let (stdin, stdout, ours) = match direction {
            Direction::Save => (read, null, write),
            Direction::Restore => (null, write, read),
        };
        let running = broker.run(command, &stdin, &stdout)?;
        return Ok(Channel {
            file: File::from(ours),
            waiter: Waiter::Broker(running, command.into()),
        });
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command);
    let ours = match direction {
        Direction::Save => {
            cmd.stdin(Stdio::from(read)).stdout(Stdio::null());
            write
        }
        Direction::Restore => {
            cmd.stdout(Stdio::from(write)).stdin(Stdio::null());
            read
        }
    };
    let child = cmd.spawn().map_err(io_err(what()))?;
    // Our copy of the command's end goes, so each side sees the other's end.
    drop(cmd);
    Ok(Channel {
        file: File::from(ours),
        waiter: Waiter::Child(child, command.into()),
    })
}
