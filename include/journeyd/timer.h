/* include/journeyd/timer.h -- the timer wheel (part of the engine module).
 *
 * Owns: millions of pending deadlines (journey waits, segment re-checks, quiet
 * hours) per shard, with O(1) arm and cancel, fired in a deterministic order
 * when time is advanced. Time is an input: the wheel never reads a clock; the
 * shard advances it to the time of each clock record in the log, so replay
 * fires exactly the same timers in the same order.
 * Entries are embedded in the caller's structs (no allocation per timer).
 * Threading: a wheel belongs to one shard thread.
 * Not here: what a timer means (the fire callback decides).
 */
#ifndef JOURNEYD_TIMER_H
#define JOURNEYD_TIMER_H

#include "journeyd/base.h"

typedef struct tw_entry tw_entry;
typedef struct tw_wheel tw_wheel;

/* Called for each due entry; the entry is disarmed before the call, so the
 * callback may re-arm it, arm or cancel others, or free it. */
typedef void (*tw_fire_fn)(tw_wheel *w, tw_entry *e, void *ctx);

struct tw_entry {                 /* embedded by the caller; zero it before first use */
    uint64_t when_us;             /* read-only: the deadline given to tw_arm */
    uint64_t _seq;                /* private: arm order, breaks ties */
    tw_entry *_next, *_prev;      /* private */
};

/* A wheel whose time starts at now_us; fire is called for every due entry
 * with ctx. Returns owned (tw_destroy). */
tw_wheel *tw_create(uint64_t now_us, tw_fire_fn fire, void *ctx);
/* Frees the wheel; entries still armed are simply forgotten (they belong to
 * their owners). */
void tw_destroy(tw_wheel *w);

/* Arms e for when_us (re-arming an armed entry moves it). A deadline at or
 * before the wheel's time fires at the next tw_advance. O(1). */
void tw_arm(tw_wheel *w, tw_entry *e, uint64_t when_us);
/* Disarms e if armed; O(1); safe on a zeroed or already fired entry. */
void tw_cancel(tw_wheel *w, tw_entry *e);
bool tw_armed(const tw_entry *e);

/* Moves the wheel's time to now_us (never backwards: an earlier value is
 * ignored) and fires every entry with when_us <= now_us in order of
 * (when_us, arm order). Entries armed by callbacks for times <= now_us fire in
 * the same call. Returns how many fired. */
size_t tw_advance(tw_wheel *w, uint64_t now_us);

uint64_t tw_now(const tw_wheel *w);
size_t   tw_count(const tw_wheel *w);         /* armed entries */
/* The earliest armed deadline, or UINT64_MAX when none. After the earliest
 * entry was cancelled it scans the earliest slot (O(its length)). */
uint64_t tw_next_deadline(tw_wheel *w);
/* O(1): a time no armed deadline is before (the exact one when known). A
 * caller asking "is anything due by t?" checks this first and calls
 * tw_next_deadline only when it is <= t. */
uint64_t tw_next_deadline_bound(const tw_wheel *w);

#endif
