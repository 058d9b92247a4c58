// The attacker's program: logs "uid=N ARG1" to LOG, then execs the real qemu (REAL).
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(LOG, O_WRONLY | O_APPEND | O_CREAT, 0666);
    if (fd >= 0) {
        dprintf(fd, "uid=%d %s\n", (int)getuid(), argc > 1 ? argv[1] : "-");
        close(fd);
    }
    execv(REAL, argv);
    return 127;
}
