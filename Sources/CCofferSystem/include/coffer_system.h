#ifndef COFFER_SYSTEM_H
#define COFFER_SYSTEM_H

/// Marks the process non-dumpable (no core dumps, no ptrace attach by same-uid processes).
/// Returns 0 on success, -1 with errno set otherwise.
int coffer_set_non_dumpable(void);

/// The soft RLIMIT_MEMLOCK in bytes, or -1 if unlimited or unknown.
long long coffer_memlock_limit(void);

/// How many CPUs this process may run on (its affinity mask: taskset, systemd's CPUAffinity=),
/// or -1 if unknown.
int coffer_affinity_cpu_count(void);

#endif
