// r1-sandbox-init: the first process inside the code sandbox (rewards/sandbox.h), run by bubblewrap
// with CAP_SYS_ADMIN and CAP_SYS_RESOURCE in the sandbox's own user namespace and nothing else. It
//   1. mounts size- and inode-bounded tmpfs filesystems on /tmp and /work (bubblewrap's own tmpfs
//      has a size option but no file-count one) and copies the run's files into /work,
//   2. allows no further user namespace: max_user_namespaces 0 in the sandbox's namespace, checked
//      (what bubblewrap's --disable-userns and --assert-userns-disabled do; bubblewrap does it by
//      moving the program into a nested namespace, where the mounts of step 1 are not permitted),
//   3. drops every capability and sets no_new_privs,
//   4. loads a seccomp filter: no ptrace or reading other processes' memory, no mounts, no new
//      namespaces (nested user namespaces included), no kernel keyrings, modules, BPF, perf,
//      userfaultfd, reboot or clock changes,
//   5. and executes the program.
// Any failure ends it with status 125 before the program runs: the sandbox fails closed.
// Without bubblewrap (r1's --unsafe-no-sandbox) it is run without --mount and does 3-5 only.
// Plain C++, no torch: a small separate executable.
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kSetupFailed = 125;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "r1-sandbox-init: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(kSetupFailed);
}

void mount_bounded_tmpfs(const char* where, const std::string& bytes, const std::string& files, const char* mode) {
  const std::string options = "size=" + bytes + ",nr_inodes=" + files + ",mode=" + mode;
  if (::mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0)
    fail(std::string("mount tmpfs on ") + where + " (" + options + ")");
}

// Copies the regular files of `from` (flat, as the sandbox writes them) into `to`, keeping modes.
void copy_files(const std::string& from, const std::string& to) {
  DIR* dir = ::opendir(from.c_str());
  if (!dir) fail("open " + from);
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string source = from + "/" + name, target = to + "/" + name;
    struct stat st {};
    if (::stat(source.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const int in = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
    const int out = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
    if (in < 0 || out < 0) fail("copy " + source);
    char buffer[65536];
    for (ssize_t n; (n = ::read(in, buffer, sizeof buffer)) != 0;) {
      if (n < 0 || ::write(out, buffer, static_cast<size_t>(n)) != n) fail("copy " + source);
    }
    ::close(in);
    ::close(out);
  }
  ::closedir(dir);
}

void disable_user_namespaces() {
  const int fd = ::open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::write(fd, "0\n", 2) != 2) fail("set max_user_namespaces to 0");
  ::close(fd);
  const pid_t probe = ::fork();  // the check, in a child: a new namespace must be refused
  if (probe < 0) fail("fork");
  if (probe == 0) ::_exit(::unshare(CLONE_NEWUSER) == 0 ? 1 : 0);
  int status = 0;
  if (::waitpid(probe, &status, 0) != probe || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    errno = EPERM;
    fail("user namespaces are still allowed");
  }
}

void drop_capabilities() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("no_new_privs");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) fail("clear ambient capabilities");
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[2] = {};
  if (::syscall(SYS_capset, &header, none) != 0) fail("drop capabilities");
}

void load_seccomp_filter() {
  scmp_filter_ctx filter = ::seccomp_init(SCMP_ACT_ALLOW);
  if (!filter) fail("seccomp_init");
  const char* denied[] = {
      "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",   // other processes' memory
      "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig",
      "fsmount", "fspick",                                                         // the filesystem layout
      "unshare", "setns",                                                          // new namespaces
      "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "kexec_load", "kexec_file_load",
      "init_module", "finit_module", "delete_module", "swapon", "swapoff", "reboot", "acct", "settimeofday",
      "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "open_by_handle_at", "name_to_handle_at",
      "syslog", "quotactl", "lookup_dcookie", "personality"};
  for (const char* name : denied) {
    const int number = ::seccomp_syscall_resolve_name(name);
    if (number == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (::seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), number, 0) != 0) fail(std::string("seccomp rule ") + name);
  }
  // clone may make threads and processes but no namespace (libseccomp compares "(flags & mask) ==
  // value": one rule per flag). clone3 passes its flags in memory a filter cannot read, so it says
  // "not implemented" and libc falls back to clone.
  for (const scmp_datum_t flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
                                  CLONE_NEWCGROUP}) {
    if (::seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)) != 0)
      fail("seccomp rule clone");
  }
  if (::seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0) fail("seccomp rule clone3");
  if (::seccomp_load(filter) != 0) fail("seccomp_load");
  ::seccomp_release(filter);
}

void usage() {
  std::fprintf(stderr,
               "usage: r1-sandbox-init [--mount TMP_BYTES TMP_FILES WORK_BYTES WORK_FILES FILES_DIR] -- PROGRAM [ARGS]\n");
  std::exit(kSetupFailed);
}

}  // namespace

int main(int argc, char** argv) {
  int at = 1;
  if (at < argc && std::strcmp(argv[at], "--mount") == 0) {
    if (argc < at + 6) usage();
    const std::string files_dir = argv[at + 5];
    mount_bounded_tmpfs("/tmp", argv[at + 1], argv[at + 2], "1777");
    mount_bounded_tmpfs("/work", argv[at + 3], argv[at + 4], "0755");
    copy_files(files_dir, "/work");
    if (::umount2(files_dir.c_str(), MNT_DETACH) != 0) fail("unmount " + files_dir);
    disable_user_namespaces();
    if (::chdir("/work") != 0) fail("chdir /work");
    at += 6;
  }
  if (at >= argc || std::strcmp(argv[at], "--") != 0 || at + 1 >= argc) usage();
  drop_capabilities();
  load_seccomp_filter();
  ::execv(argv[at + 1], argv + at + 1);
  fail(std::string("exec ") + argv[at + 1]);
}
