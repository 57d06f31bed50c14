// The kernel's view of clock synchronisation (adjtimex with no changes), for `svrd doctor`.
#ifndef SVR_CLOCK_EXTRA_H
#define SVR_CLOCK_EXTRA_H

#include <errno.h>
#include <sys/timex.h>

/// 1 when the clock is not synchronised (TIME_ERROR or STA_UNSYNC), 0 when it is, -errno on
/// failure. `*esterror`: the kernel's estimated error in microseconds.
static inline int svr_clock_unsynchronized(long *esterror) {
    struct timex t = {0};
    int state = adjtimex(&t);
    if (state < 0) return -errno;
    *esterror = t.esterror;
    return (state == TIME_ERROR || (t.status & STA_UNSYNC)) ? 1 : 0;
}

#endif
