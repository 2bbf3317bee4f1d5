//! Each thread kind's allow-list: the system calls it makes once the guest may run, with their
//! arguments where an argument is what makes a call dangerous (ioctl requests, executable
//! mappings, which signals). Whatever is not here traps (see `report`).
use super::ioctls;
use super::ThreadKind;
use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use std::collections::{BTreeMap, BTreeSet};

/// An allow-list under construction: calls allowed whatever their arguments, and calls allowed
/// when one of their rules matches.
#[derive(Default)]
pub struct AllowList {
    any: BTreeSet<i64>,
    when: BTreeMap<i64, Vec<SeccompRule>>,
}

/// One condition on argument `arg` (32 bits: every argument filtered here is an int, an
/// unsigned int or a request the kernel truncates to 32 bits).
fn arg(arg: u8, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    // Index 0-5 and a 32-bit compare cannot be refused.
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).expect("a valid condition")
}

fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("a rule with conditions")
}

impl AllowList {
    fn any(&mut self, calls: &[i64]) {
        self.any.extend(calls);
    }

    /// `call` when argument `index` is one of `values`.
    fn one_of(&mut self, call: i64, index: u8, values: &[u64]) {
        let rules = self.when.entry(call).or_default();
        rules.extend(
            values
                .iter()
                .map(|v| rule(vec![arg(index, SeccompCmpOp::Eq, *v)])),
        );
    }

    /// `call` when none of `bits` is set in argument `index`.
    fn without_bits(&mut self, call: i64, index: u8, bits: u64) {
        let rules = self.when.entry(call).or_default();
        rules.push(rule(vec![arg(index, SeccompCmpOp::MaskedEq(bits), 0)]));
    }

    /// The rules seccompiler takes: an empty list allows a call whatever its arguments.
    pub fn into_rules(self) -> BTreeMap<i64, Vec<SeccompRule>> {
        let mut rules = self.when;
        for call in self.any {
            rules.insert(call, Vec::new());
        }
        rules
    }

    #[cfg(test)]
    pub fn allows_any(&self, call: i64) -> bool {
        self.any.contains(&call)
    }

    #[cfg(test)]
    pub fn allows(&self, call: i64) -> bool {
        self.any.contains(&call) || self.when.contains_key(&call)
    }
}

/// What every thread needs to live and to die: memory (never executable), locks, time, its own
/// signals (the vCPU kick, an abort), reading and writing descriptors it already has, exiting.
fn base(kick: i32) -> AllowList {
    let mut l = AllowList::default();
    l.any(&[
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_lseek,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_brk,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_restart_syscall,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigaction,
        libc::SYS_sigaltstack,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_getrandom,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_exit,
        libc::SYS_exit_group,
        // Allowed here and answered EACCES by the second filter (`super::no_open_program`):
        // glibc's allocator may read a /proc file once; nothing may open anything.
        libc::SYS_open,
        libc::SYS_openat,
    ]);
    for call in [libc::SYS_mmap, libc::SYS_mprotect] {
        l.without_bits(call, 2, libc::PROT_EXEC as u64);
    }
    let signals = [kick as u64, libc::SIGABRT as u64];
    // glibc signals a thread with tgkill(pid, tid, sig), musl with tkill(tid, sig).
    l.one_of(libc::SYS_tgkill, 2, &signals);
    l.one_of(libc::SYS_tkill, 1, &signals);
    l.one_of(
        libc::SYS_fcntl,
        1,
        &[
            libc::F_GETFD,
            libc::F_SETFD,
            libc::F_GETFL,
            libc::F_SETFL,
            libc::F_DUPFD_CLOEXEC,
        ]
        .map(|c| c as u64),
    );
    l
}

/// The descriptors a disk, a TAP or guest output sit on: positioned and vectored I/O, making
/// what was written durable, discards and zeroes, non-blocking sends to a socket.
fn device_io(l: &mut AllowList) {
    l.any(&[
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_preadv,
        libc::SYS_pwritev,
        libc::SYS_preadv2,
        libc::SYS_pwritev2,
        libc::SYS_fdatasync,
        libc::SYS_fsync,
        libc::SYS_ftruncate,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        // A vCPU that gives virtio-net receive buffers takes waiting frames from a socket.
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
    ]);
    let modes = [
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        libc::FALLOC_FL_ZERO_RANGE,
        libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        0,
    ];
    l.one_of(libc::SYS_fallocate, 1, &modes.map(|m| m as u64));
}

/// Whichever thread ends the VM ends passt (`-netdev user`): it shuts the socket down, and passt
/// exits; `wait4` reaps it (only a child of minnow's can be waited for).
fn ending_helpers(l: &mut AllowList) {
    l.any(&[libc::SYS_wait4]);
}

/// The allow-list of `kind`, with `kick` the vCPU kick signal (SIGRTMIN, which differs between
/// glibc and musl).
pub fn allow_list(kind: ThreadKind, kick: i32) -> AllowList {
    let mut l = base(kick);
    let mut requests = ioctls::descriptors();
    match kind {
        ThreadKind::Vcpu => {
            device_io(&mut l);
            requests.extend(ioctls::vcpu_kvm());
            requests.extend(ioctls::vhost());
        }
        ThreadKind::Events => {
            device_io(&mut l);
            l.any(&[
                libc::SYS_epoll_wait,
                libc::SYS_epoll_pwait,
                libc::SYS_epoll_ctl,
                libc::SYS_accept,
                libc::SYS_shutdown,
                libc::SYS_timerfd_settime,
                libc::SYS_timerfd_gettime,
                libc::SYS_unlink,
                libc::SYS_unlinkat,
                // `migrate exec:`: the pipe to the command the broker starts.
                libc::SYS_pipe2,
            ]);
            l.one_of(libc::SYS_accept4, 3, &[libc::SOCK_CLOEXEC as u64, 0]);
            // TCP_NODELAY on a monitor's TCP client.
            l.when.entry(libc::SYS_setsockopt).or_default().push(rule(vec![
                arg(1, SeccompCmpOp::Eq, libc::IPPROTO_TCP as u64),
                arg(2, SeccompCmpOp::Eq, libc::TCP_NODELAY as u64),
            ]));
            requests.extend(ioctls::events_kvm());
            requests.extend(ioctls::vhost());
            ending_helpers(&mut l);
        }
        ThreadKind::Main => {
            // Removing the pid file at the end; its writes go to descriptors it already has.
            l.any(&[libc::SYS_unlink, libc::SYS_unlinkat, libc::SYS_shutdown]);
            ending_helpers(&mut l);
        }
    }
    requests.sort_unstable();
    requests.dedup();
    // KVM_RUN first: a vCPU's most frequent call meets the shortest path through the filter.
    if let Some(at) = requests.iter().position(|r| *r == ioctls::KVM_RUN()) {
        let run = requests.remove(at);
        requests.insert(0, run);
    }
    l.one_of(libc::SYS_ioctl, 1, &requests);
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_kind_may_spawn_execute_or_map_code() {
        for kind in ThreadKind::ALL {
            let l = allow_list(kind, 34);
            for call in [
                libc::SYS_execve,
                libc::SYS_execveat,
                libc::SYS_fork,
                libc::SYS_vfork,
                libc::SYS_clone,
                libc::SYS_clone3,
                libc::SYS_ptrace,
                libc::SYS_socket,
                libc::SYS_connect,
                libc::SYS_bind,
                libc::SYS_mount,
                libc::SYS_setuid,
                libc::SYS_prctl,
                libc::SYS_bpf,
            ] {
                assert!(!l.allows(call), "{kind:?} allows {call}");
            }
            assert!(!l.allows_any(libc::SYS_mmap) && !l.allows_any(libc::SYS_ioctl));
        }
    }

    #[test]
    fn only_vcpus_run_guests_and_only_the_event_thread_accepts_clients() {
        let vcpu = allow_list(ThreadKind::Vcpu, 34).into_rules();
        let events = allow_list(ThreadKind::Events, 34).into_rules();
        let run = ioctls::KVM_RUN();
        let has_request = |rules: &BTreeMap<i64, Vec<SeccompRule>>| {
            format!("{:?}", rules[&libc::SYS_ioctl]).contains(&format!("value: {run}"))
        };
        assert!(has_request(&vcpu));
        assert!(!has_request(&events));
        assert!(events.contains_key(&libc::SYS_accept4) && !vcpu.contains_key(&libc::SYS_accept4));
    }
}
