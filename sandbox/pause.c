/*
 * The sandbox's pod sandbox ("pause") container, built by sandbox/images.py with `cc -static -Os`.
 *
 * It holds the pod's namespaces open, reaps every child that is handed to it (as PID 1 of the pod's PID
 * namespace it inherits the orphans), and exits 0 on SIGTERM or SIGINT. Real handlers, not SIG_DFL: as
 * PID 1 the kernel drops signals whose disposition is the default. The signals stay blocked except inside
 * sigsuspend, so none arrives between the check and the wait.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

static volatile sig_atomic_t stopping;

static void on_stop(int sig) {
    (void)sig;
    stopping = 1;
}

static void on_child(int sig) {
    (void)sig; /* the loop below reaps */
}

static void handle(int sig, void (*handler)(int), int flags) {
    struct sigaction action = {0};
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    sigaction(sig, &action, NULL);
}

int main(void) {
    sigset_t watched, waiting;
    sigemptyset(&watched);
    sigaddset(&watched, SIGTERM);
    sigaddset(&watched, SIGINT);
    sigaddset(&watched, SIGCHLD);
    sigprocmask(SIG_BLOCK, &watched, &waiting);
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGCHLD);

    handle(SIGTERM, on_stop, 0);
    handle(SIGINT, on_stop, 0);
    handle(SIGCHLD, on_child, SA_NOCLDSTOP);

    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (stopping) {
            return 0;
        }
        sigsuspend(&waiting);
    }
}
