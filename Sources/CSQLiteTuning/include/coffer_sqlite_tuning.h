#ifndef COFFER_SQLITE_TUNING_H
#define COFFER_SQLITE_TUNING_H

/// Turns SQLite's allocator statistics off (SQLITE_CONFIG_MEMSTATUS). With them on, every
/// sqlite3_malloc and sqlite3_free takes a process-wide mutex to keep the counts. Must run
/// before SQLite is initialised (before the first connection opens) and while no other thread
/// calls SQLite. Returns SQLITE_OK (0), or SQLITE_MISUSE if SQLite was already initialised.
int coffer_sqlite_disable_memstatus(void);

#endif
