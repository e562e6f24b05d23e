/*
** schedule.h — agents' weekly availability schedules and IANA time zones.
**
** An agent's "schedule" is a JSON array of at most SCHED_MAX_WINDOWS windows:
**
**   {"days": ["mon", "tue"], "from": "09:00", "to": "17:00",
**    "devices": ["landline", "softphone"]}
**
**  - days: non-empty array of "mon".."sun", "weekdays" (mon..fri),
**    "weekend" (sat, sun) or "all".
**  - from, to: "HH:MM", 00:00..24:00. from < to is the same-day window
**    [from, to); from > to crosses midnight and belongs to the day it starts
**    ("fri" 22:00-06:00 is Fri 22:00 to Sat 06:00); from == to is an error, and so is
**    24:00-00:00 (the same moment).
**  - devices: optional non-empty array of "landline", "mobile", "softphone";
**    absent means every device.
**  - any other field is an error.
**
** Windows are evaluated in the agent's wall-clock time, in its IANA zone
** ("timezone"), read from TZif files under $TZDIR or /usr/share/zoneinfo.
** "UTC" and "Etc/UTC" work without any tzdata. A NULL zone name means "UTC"
** everywhere in this module. Loaded zones are cached for the life of the
** process (at most 2048; past that, zones are loaded per call).
**
** A window is one unbroken stretch of time: it starts the first time the wall
** clock reaches "from" and ends the first time it reaches "to". When the clocks
** go back, the repeated time counts as the moment before the change: a window
** that was on stays on, one that had ended (or lies wholly in the repeated
** hour) does not come back. When they go forward, a window whose from or to
** falls in the skipped time starts or ends at the change.
**
** Every function is thread-safe. Internal to the engine: not exported.
*/
#ifndef SB_SCHEDULE_H
#define SB_SCHEDULE_H

#include <jansson.h>
#include <stdint.h>
#include <stddef.h>

#define SCHED_MAX_WINDOWS 64

enum { DEV_LANDLINE = 1, DEV_MOBILE = 2, DEV_SOFTPHONE = 4, DEV_ALL = 7 };

/* "landline"/"mobile"/"softphone" -> its DEV_* bit; anything else (or NULL) -> 0. */
/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (m 1..12), and back. */
int64_t sched_days_from_civil(int64_t y, int m, int d);
void sched_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int sched_device_bit(const char *name);
/* Inverse of sched_device_bit: a static name, or NULL if bit is not exactly one known bit. */
const char *sched_device_name(int bit);

/* Validate an agent's "schedule" (JSON array, may be NULL) and "timezone" (may be NULL =
** "UTC"). 0 on success (err and field set to ""); -1 with a human message in err and the
** offending field path in field, e.g. field "schedule[2].from", message "expected HH:MM
** (00:00..24:00)"; an unknown zone gives field "timezone". err/field may be NULL; they are
** truncated to errlen/fieldlen (NUL included). */
int sched_validate(const json_t *schedule, const char *tz, char *err, size_t errlen, char *field,
                   size_t fieldlen);

/* Devices the schedule allows at now_ms (ms since Unix epoch): a DEV_* mask; 0 = outside
** every window. NULL or empty schedule = always on, DEV_ALL, whatever tz is (the zone is
** not read). A window without "devices" allows DEV_ALL. Several windows matching at once:
** union of their devices. Otherwise invalid input (what sched_validate rejects): 0. */
unsigned sched_devices_at(const json_t *schedule, const char *tz, int64_t now_ms);

/* The same, for routing: with windows, a zone whose file cannot be loaded gives 0 (outside
** every window) and is not read again until now_ms has moved a minute (60000 ms) from the
** failure, forward or back: the retry follows the caller's clock (the engine's, injected or
** not), and a clock set back cannot put it off for ever. The first time such a failure is
** seen, failed (cap bytes) gets the file's path, for the caller to tell the operator; else
** "". */
unsigned sched_devices_told(const json_t *schedule, const char *tz, int64_t now_ms, char *failed,
                            size_t failed_cap);

/* UTC offset (seconds east) of zone tz at utc_s (seconds since the epoch). 0 on success,
** -1 for an unknown/invalid zone name or an unreadable, truncated or corrupt TZif file. */
int tz_offset(const char *tz, int64_t utc_s, int32_t *offset);

/* 1 if tz is a loadable zone name, else 0. Names are 1..64 bytes of [A-Za-z0-9/_+-], in
** non-empty '/'-separated components not starting with '/'; "localtime", "posixrules" and
** right/... are files of the tz directory but not zones, and are not valid. */
int tz_valid(const char *tz);

#endif
