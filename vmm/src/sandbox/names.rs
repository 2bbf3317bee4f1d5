//! System call names for the violation report: the calls a filter is likely to refuse, and the
//! ones it allows (a refusal of those means a wrong argument). Others are reported by number.
macro_rules! names {
    ($($call:ident),* $(,)?) => {
        /// The name of system call `nr`, if it is in the table.
        pub fn name(nr: i64) -> Option<&'static str> {
            $(
                if nr == libc::$call {
                    // "SYS_getppid" -> "getppid"
                    return Some(&stringify!($call)[4..]);
                }
            )*
            None
        }
    };
}

names!(
    SYS_read, SYS_write, SYS_open, SYS_close, SYS_stat, SYS_fstat, SYS_lstat, SYS_poll,
    SYS_lseek, SYS_mmap, SYS_mprotect, SYS_munmap, SYS_brk, SYS_rt_sigaction,
    SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_ioctl, SYS_pread64, SYS_pwrite64, SYS_readv,
    SYS_writev, SYS_access, SYS_pipe, SYS_select, SYS_sched_yield, SYS_mremap, SYS_msync,
    SYS_madvise, SYS_dup, SYS_dup2, SYS_nanosleep, SYS_getpid, SYS_socket, SYS_connect,
    SYS_accept, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg, SYS_shutdown, SYS_bind,
    SYS_listen, SYS_setsockopt, SYS_getsockopt, SYS_clone, SYS_fork, SYS_vfork, SYS_execve,
    SYS_exit, SYS_wait4, SYS_kill, SYS_uname, SYS_fcntl, SYS_flock, SYS_fsync, SYS_fdatasync,
    SYS_truncate, SYS_ftruncate, SYS_getcwd, SYS_chdir, SYS_rename, SYS_mkdir, SYS_rmdir,
    SYS_creat, SYS_link, SYS_unlink, SYS_symlink, SYS_readlink, SYS_chmod, SYS_chown,
    SYS_umask, SYS_getrlimit, SYS_getrusage, SYS_sysinfo, SYS_ptrace, SYS_getuid, SYS_getgid,
    SYS_setuid, SYS_setgid, SYS_geteuid, SYS_getegid, SYS_setpgid, SYS_getppid, SYS_setsid,
    SYS_sigaltstack, SYS_personality, SYS_prctl, SYS_arch_prctl, SYS_setrlimit, SYS_chroot,
    SYS_mount, SYS_umount2, SYS_reboot, SYS_gettid, SYS_tkill, SYS_futex, SYS_sched_getaffinity,
    SYS_epoll_wait, SYS_epoll_ctl, SYS_tgkill, SYS_openat, SYS_newfstatat, SYS_unlinkat,
    SYS_ppoll, SYS_set_robust_list, SYS_epoll_pwait, SYS_timerfd_settime, SYS_timerfd_gettime,
    SYS_fallocate, SYS_accept4, SYS_eventfd2, SYS_epoll_create1, SYS_dup3, SYS_pipe2,
    SYS_preadv, SYS_pwritev, SYS_perf_event_open, SYS_getrandom, SYS_memfd_create, SYS_bpf,
    SYS_execveat, SYS_userfaultfd, SYS_preadv2, SYS_pwritev2, SYS_statx, SYS_rseq,
    SYS_io_uring_setup, SYS_clone3, SYS_clock_gettime, SYS_clock_nanosleep, SYS_exit_group,
    SYS_restart_syscall, SYS_seccomp, SYS_setns, SYS_unshare, SYS_kexec_load,
);

#[cfg(test)]
mod tests {
    #[test]
    fn names_come_from_libcs_constants() {
        assert_eq!(super::name(libc::SYS_getppid), Some("getppid"));
        assert_eq!(super::name(libc::SYS_ioctl), Some("ioctl"));
        assert_eq!(super::name(100_000), None);
    }
}
