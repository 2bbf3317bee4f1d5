//! The snapshot broker from the VMM's side: it runs commands on descriptors it is given and
//! opens files. Its own process (not the lib's unit tests): forking a test harness whose other
//! tests hold disk locks would hold those locks in the child for a moment.
use minnow_vmm::sandbox::broker::Broker;
use std::os::fd::{FromRawFd, OwnedFd};

use std::io::{Read, Write};

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two descriptors.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: just created, owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
}

#[test]
fn the_broker_runs_commands_on_our_descriptors_and_opens_files() {
    let broker = Broker::start().expect("forks");
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let running = broker.run("tr a-z A-Z; exit 3", &in_r, &out_w).expect("sent");
    drop((in_r, out_w));
    std::fs::File::from(in_w).write_all(b"hello").unwrap();
    let mut out = String::new();
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    assert_eq!(out, "HELLO");
    assert_eq!(running.wait().unwrap(), 3);

    let dir = std::env::temp_dir().join(format!("minnow-broker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f");
    let fd = broker
        .open(
            path.to_str().unwrap(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        )
        .expect("opens");
    std::fs::File::from(fd).write_all(b"x").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"x");
    let err = broker.open("/nonexistent/dir/f", libc::O_RDONLY).unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
    assert!(broker.run("a\0b", &in_fd(), &in_fd()).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

fn in_fd() -> OwnedFd {
    pipe().0
}
