/* probe.c: tries syscalls that Docker's default seccomp profile denies and prints
 * one line per attempt, `NAME=OK` or `NAME=<errno number>`, so the seccomp tests
 * can tell a seccomp denial (EPERM, or ENOSYS for clone3) from a capability one.
 * Built static by the tests (`cc -static`), since the test image has no libc. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, long rc) {
    if (rc < 0)
        printf("%s=%d\n", name, errno);
    else
        printf("%s=OK\n", name);
}

int main(void) {
    /* KEYCTL_GET_KEYRING_ID of the session keyring, without creating one */
    report("keyctl", syscall(SYS_keyctl, 0, -3, 0, 0, 0));
    report("add_key", syscall(SYS_add_key, "user", "bake", "x", 1, -2));
    report("request_key", syscall(SYS_request_key, "user", "bake-none", NULL, 0));
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    report("clone-newuser", pid);
    /* struct clone_args of 64 bytes, all zero but exit_signal: a plain fork */
    unsigned long args[8];
    memset(args, 0, sizeof args);
    args[4] = SIGCHLD;
    long pid3 = syscall(SYS_clone3, args, sizeof args);
    if (pid3 == 0)
        _exit(0);
    if (pid3 > 0)
        waitpid((pid_t)pid3, NULL, 0);
    report("clone3", pid3);
    /* READ_IMPLIES_EXEC: not one of the personalities the profile allows */
    report("personality", syscall(SYS_personality, 0x0400000));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    /* last: it moves this process into a new user namespace where its uid is unmapped */
    report("unshare-user", syscall(SYS_unshare, CLONE_NEWUSER));
    fflush(stdout);
    return 0;
}
