#ifdef __linux__
#define _GNU_SOURCE
#include <sched.h>
#endif

#include "coffer_system.h"

#include <sys/resource.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

int coffer_set_non_dumpable(void) {
#ifdef __linux__
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#else
    return 0;
#endif
}

long long coffer_memlock_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return -1;
    return (long long)limit.rlim_cur;
}

int coffer_affinity_cpu_count(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
#else
    return -1;
#endif
}
