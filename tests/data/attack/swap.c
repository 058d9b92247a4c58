// swap FILE A B: wait until FILE is closed after reading (binfmtd's header check is done),
// then exchange directories A and B in one renameat2(RENAME_EXCHANGE).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char buf[4096];
    int in = inotify_init1(0);
    if (argc != 4 || in < 0 || inotify_add_watch(in, argv[1], IN_CLOSE_NOWRITE) < 0) return 2;
    puts("ready");
    fflush(stdout);
    if (read(in, buf, sizeof buf) <= 0) return 3;
    if (syscall(SYS_renameat2, AT_FDCWD, argv[2], AT_FDCWD, argv[3], 2 /* RENAME_EXCHANGE */)) return 4;
    puts("swapped");
    return 0;
}
