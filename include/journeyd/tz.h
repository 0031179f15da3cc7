/* include/journeyd/tz.h -- IANA time zones (part of base), through ICU.
 *
 * Owns: converting an instant to local calendar fields in a named zone, and
 * finding the next instant a local wall-clock time occurs (for "wait until
 * 09:00 in the person's zone"), with DST gaps and overlaps resolved by one
 * documented rule. Pure functions of their inputs and ICU's zone data (the
 * data version is logged at start, since it is an input to replay).
 * Threading: any thread (each thread keeps its own small cache of calendars).
 * Not here: parsing time text (base.h jd_time_parse), clocks.
 */
#ifndef JOURNEYD_TZ_H
#define JOURNEYD_TZ_H

#include "journeyd/base.h"

typedef struct jd_local {
    int year, month, day;            /* month 1..12, day 1..31 */
    int hour, minute, second, millis;
    int weekday;                     /* 0 = Sunday .. 6 = Saturday */
    int yday;                        /* 0-based day of the year */
    int32_t offset_s;                /* UTC offset in force, DST included */
} jd_local;

/* True if zone is a known IANA zone id ("Europe/Paris", "UTC", "America/New_York")
 * or a fixed offset ("+02:00", "-0530"). */
bool jd_tz_valid(const char *zone);
/* JD_EINVAL (err: "unknown time zone 'X'") for an unknown zone. */
int  jd_tz_to_local(const char *zone, int64_t utc_us, jd_local *out, jd_err *err);
/* The first instant strictly after after_us at which the local time in zone is
 * hour:minute:00, on a weekday in weekday_mask (bit 0 = Sunday; 0 = any day).
 * A local time that does not exist (spring forward) maps to the first instant
 * after the gap; one that happens twice (fall back) to its first occurrence. */
int  jd_tz_next_local(const char *zone, int64_t after_us, int hour, int minute,
                      uint8_t weekday_mask, int64_t *out_us, jd_err *err);
/* ICU's time zone data version ("2024a"), for the start-up log line. */
const char *jd_tz_data_version(void);

#endif
