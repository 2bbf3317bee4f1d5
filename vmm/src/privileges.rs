//! Giving up privileges once a VM's host resources are open (`-run-with user=,chroot=`,
//! `-runas`, `-chroot`), in QEMU's order: the user is looked up first (the password database
//! may not exist inside the new root), then the root changes (`chroot`, then `chdir("/")`),
//! then the groups and the user (`setgid`, the user's supplementary groups, `setuid`), and a
//! check that root cannot be had back. Everything the VM needs later (disks, taps, sockets,
//! the kernel, which a reset reloads from memory) is a descriptor opened before this.
use crate::config::{RunAs, RunWith};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("-run-with user={0}: no such user")]
    NoUser(String),
    #[error("-run-with user={0}: looking the user up: {1}")]
    Lookup(String, io::Error),
    #[error("-run-with chroot={0}: {1}")]
    Chroot(PathBuf, io::Error),
    #[error("-run-with user: switching to uid {uid}, gid {gid}: {source}")]
    Switch { uid: u32, gid: u32, source: io::Error },
    #[error("-run-with user: after switching to uid {0} the process could become root again; stopping")]
    Regained(u32),
}

/// A resolved user: ids, and the name whose supplementary groups it gets (none for UID:GID).
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    uid: u32,
    gid: u32,
    name: Option<CString>,
}

fn check(ret: libc::c_int) -> io::Result<()> {
    match ret {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// Looks `user` up in the password database.
fn resolve(user: &RunAs) -> Result<Identity, PrivilegeError> {
    let name = match user {
        RunAs::Ids { uid, gid } => {
            return Ok(Identity {
                uid: *uid,
                gid: *gid,
                name: None,
            })
        }
        RunAs::Name(name) => name,
    };
    let no_user = || PrivilegeError::NoUser(name.clone());
    let c_name = CString::new(name.as_bytes()).map_err(|_| no_user())?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer names memory that lives across the call; `buf`'s length is given.
    let err = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if err != 0 {
        return Err(PrivilegeError::Lookup(
            name.clone(),
            io::Error::from_raw_os_error(err),
        ));
    }
    if found.is_null() {
        return Err(no_user());
    }
    Ok(Identity {
        uid: entry.pw_uid,
        gid: entry.pw_gid,
        name: Some(c_name),
    })
}

/// Makes `dir` the root directory and the working directory.
fn change_root(dir: &Path) -> Result<(), PrivilegeError> {
    let fail = |e| PrivilegeError::Chroot(dir.into(), e);
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| fail(io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: chroot reads the NUL-terminated string it is given.
    check(unsafe { libc::chroot(c_dir.as_ptr()) }).map_err(fail)?;
    // SAFETY: as above, for chdir.
    check(unsafe { libc::chdir(c"/".as_ptr()) }).map_err(fail)
}

/// Becomes `who`: group, supplementary groups, then user.
fn switch_user(who: &Identity) -> Result<(), PrivilegeError> {
    let fail = |source| PrivilegeError::Switch {
        uid: who.uid,
        gid: who.gid,
        source,
    };
    // SAFETY: setgid, setgroups, initgroups and setuid read only the values and strings given;
    // glibc applies them to every thread of the process.
    unsafe {
        check(libc::setgid(who.gid)).map_err(fail)?;
        match &who.name {
            Some(name) => check(libc::initgroups(name.as_ptr(), who.gid)).map_err(fail)?,
            None => check(libc::setgroups(1, &who.gid)).map_err(fail)?,
        }
        check(libc::setuid(who.uid)).map_err(fail)?;
    }
    // SAFETY: as above; this call must fail for an unprivileged user.
    if who.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(PrivilegeError::Regained(who.uid));
    }
    Ok(())
}

/// Applies `run_with`. A change of credentials clears the parent-death signal; it is put back,
/// so a VM still dies with the process that started it.
pub fn apply(run_with: &RunWith) -> Result<(), PrivilegeError> {
    let identity = run_with.user.as_ref().map(resolve).transpose()?;
    if let Some(dir) = &run_with.chroot {
        change_root(dir)?;
    }
    if let Some(who) = identity {
        let mut death_signal: libc::c_int = 0;
        // SAFETY: PR_GET_PDEATHSIG writes one int to the address given.
        unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut death_signal as *mut libc::c_int) };
        switch_user(&who)?;
        if death_signal != 0 {
            // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_by_name_or_as_given() {
        let root = resolve(&RunAs::Name("root".into())).expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(
            resolve(&RunAs::Ids { uid: 7, gid: 8 }).ok(),
            Some(Identity {
                uid: 7,
                gid: 8,
                name: None
            })
        );
        let e = resolve(&RunAs::Name("no-such-user-minnow".into())).unwrap_err();
        assert_eq!(e.to_string(), "-run-with user=no-such-user-minnow: no such user");
    }

    #[test]
    fn nothing_asked_changes_nothing() {
        apply(&RunWith::default()).expect("a no-op");
    }
}
