/* The escape-attempt probe: each attempt prints one line, "NAME: RESULT", where
 * RESULT is "ok" (the attempt worked), "errno N" (it failed with errno N), or a
 * measurement ("bytes N", "entries N", "ro"/"rw", "uid R euid E", "forked N errno E").
 * Built static by the suite's set-up (gcc -static) and put into a test image.
 *
 *   probe all         every attempt below, in order
 *   probe forkbomb    fork until the kernel refuses; report how many
 *   probe ids         real and effective uid
 *   probe sleep       sleep 120 seconds
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

static void report(const char *name, long r) {
    if (r < 0)
        printf("%s: errno %d\n", name, errno);
    else
        printf("%s: ok\n", name);
    fflush(stdout);
}

static void read_bytes(const char *name, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: errno %d\n", name, errno);
        return;
    }
    char buf[4096];
    long total = 0, n;
    while ((n = read(fd, buf, sizeof buf)) > 0 && total < (1 << 20))
        total += n;
    close(fd);
    if (n < 0)
        printf("%s: errno %d\n", name, errno);
    else
        printf("%s: bytes %ld\n", name, total);
}

static void list_entries(const char *name, const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        printf("%s: errno %d\n", name, errno);
        return;
    }
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            count++;
    closedir(d);
    printf("%s: entries %d\n", name, count);
}

static void write_file(const char *name, const char *path, int flags) {
    int fd = open(path, O_WRONLY | flags, 0644);
    if (fd < 0) {
        printf("%s: errno %d\n", name, errno);
        return;
    }
    long r = write(fd, "1\n", 2);
    report(name, r);
    close(fd);
}

static void mount_mode(const char *name, const char *path) {
    struct statvfs st;
    if (statvfs(path, &st) < 0)
        printf("%s: errno %d\n", name, errno);
    else
        printf("%s: %s\n", name, (st.f_flag & ST_RDONLY) ? "ro" : "rw");
}

static void clone_ns(const char *name, unsigned long flag) {
    /* raw clone with a namespace flag: the child (if any) exits at once */
    long r = syscall(SYS_clone, flag | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    report(name, r);
}

static void attempts(void) {
    report("mount", mount("tmpfs", "/mnt", "tmpfs", 0, NULL));
    report("umount", umount2("/proc", MNT_DETACH));
    report("unshare-user", unshare(CLONE_NEWUSER));
    report("unshare-mount", unshare(CLONE_NEWNS));
    report("unshare-pid", unshare(CLONE_NEWPID));
    report("unshare-net", unshare(CLONE_NEWNET));
    report("unshare-ipc", unshare(CLONE_NEWIPC));
    report("unshare-uts", unshare(CLONE_NEWUTS));
    report("unshare-cgroup", unshare(CLONE_NEWCGROUP));
    report("unshare-time", unshare(CLONE_NEWTIME));
    clone_ns("clone-newuser", CLONE_NEWUSER);
    clone_ns("clone-newns", CLONE_NEWNS);
    clone_ns("clone-newnet", CLONE_NEWNET);
    report("clone3", syscall(435 /* clone3 */, NULL, 0));

    int nsfd = open("/proc/self/ns/net", O_RDONLY);
    report("setns", setns(nsfd, CLONE_NEWNET));
    if (nsfd >= 0)
        close(nsfd);

    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    report("ptrace-attach", ptrace(PTRACE_ATTACH, child, NULL, NULL));
    report("ptrace-seize", ptrace(PTRACE_SEIZE, child, NULL, NULL));
    report("process_vm_readv", syscall(SYS_process_vm_readv, child, NULL, 0, NULL, 0, 0));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));

    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.type = PERF_TYPE_SOFTWARE;
    pe.size = sizeof pe;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));

    report("keyctl", syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, "secpod"));
    report("add_key", syscall(SYS_add_key, "user", "secpod", "x", 1, -2));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("init_module", syscall(SYS_init_module, "", 0, ""));
    report("finit_module", syscall(SYS_finit_module, 0, "", 0));
    char handle[128];
    memset(handle, 0, sizeof handle);
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    report("io_uring_setup", syscall(SYS_io_uring_setup, 4, &params));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));

    report("socket-raw", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    report("socket-raw6", socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
    report("socket-packet", socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
    report("socket-tcp", socket(AF_INET, SOCK_STREAM, 0));
    /* Families a network namespace does not isolate: vsock shares the VM's port space. */
    report("socket-vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    report("socket-vsock-seqpacket", socket(40 /* AF_VSOCK */, SOCK_SEQPACKET, 0));
    report("socket-bluetooth", socket(31 /* AF_BLUETOOTH */, SOCK_SEQPACKET, 0));
    report("socket-alg", socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    int pair[2];
    report("socketpair-vsock", socketpair(40 /* AF_VSOCK */, SOCK_STREAM, 0, pair));
    report("socketpair-unix", socketpair(AF_UNIX, SOCK_STREAM, 0, pair));

    int f = open("/tmp/probe-file", O_CREAT | O_WRONLY, 0644);
    if (f >= 0)
        close(f);
    report("chown-unmapped", chown("/tmp/probe-file", 123456789, 123456789));
    report("chown-other", chown("/tmp/probe-file", 1000, 1000));
    report("mknod-char", mknod("/tmp/probe-null", S_IFCHR | 0666, makedev(1, 3)));
    report("mknod-block", mknod("/tmp/probe-sda", S_IFBLK | 0600, makedev(8, 0)));
    report("mknod-fifo", mknod("/tmp/probe-fifo", S_IFIFO | 0600, 0));

    mount_mode("mode-proc-sys", "/proc/sys");
    mount_mode("mode-sys", "/sys");
    mount_mode("mode-root", "/");
    mount_mode("mode-tmp", "/tmp");
    write_file("write-proc-sys", "/proc/sys/kernel/domainname", 0);
    write_file("write-sysrq", "/proc/sysrq-trigger", 0);
    write_file("write-sys", "/sys/kernel/profiling", 0);
    write_file("create-sys", "/sys/secpod-probe", O_CREAT);
    write_file("write-root", "/probe-was-here", O_CREAT);
    write_file("write-etc", "/etc/passwd", O_APPEND);
    write_file("write-tmp", "/tmp/probe-ok", O_CREAT);

    read_bytes("read-kcore", "/proc/kcore");
    read_bytes("read-keys", "/proc/keys");
    read_bytes("read-timer_list", "/proc/timer_list");
    list_entries("list-firmware", "/sys/firmware");
    list_entries("list-acpi", "/proc/acpi");

    report("sethostname", sethostname("escaped", 7));
    report("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL));
    report("swapoff", swapoff("/dev/null"));
    report("chroot", chroot("/tmp"));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
}

static void forkbomb(void) {
    static pid_t kids[100000];
    int n = 0, err = 0;
    while (n < 100000) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0) {
            err = errno;
            break;
        }
        kids[n++] = p;
    }
    printf("forkbomb: forked %d errno %d\n", n, err);
    fflush(stdout);
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    if (!strcmp(mode, "all"))
        attempts();
    else if (!strcmp(mode, "forkbomb"))
        forkbomb();
    else if (!strcmp(mode, "ids"))
        printf("ids: uid %d euid %d\n", (int)getuid(), (int)geteuid());
    else if (!strcmp(mode, "sleep"))
        sleep(120);
    else {
        fprintf(stderr, "probe: unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
