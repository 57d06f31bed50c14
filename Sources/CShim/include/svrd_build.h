// The git commit svrd was built from, set at build time without network or git at run time:
//   swift build -c release -Xcc -DSVRD_GIT_COMMIT='"0123abc"' -Xswiftc ... (scripts/package.sh)
// A plain `swift build` leaves it undefined and svrd reports "unknown commit".
#ifndef SVRD_BUILD_H
#define SVRD_BUILD_H

static inline const char *svrd_build_commit(void) {
#ifdef SVRD_GIT_COMMIT
    return SVRD_GIT_COMMIT;
#else
    return "";
#endif
}

#endif
