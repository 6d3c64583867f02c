/*
 * list.h — static recipient lists of closed domains (mode = list | both).
 *
 * A list comes from a file or from the standard output of a command
 * (list_command, e.g. an LDAP or hosting-panel export), in the formats
 * operators have: one address per line, or Postfix map lines
 * ("address  anything", as for relay_recipient_maps: only the first field
 * counts).  Blank lines and lines starting with '#' are skipped.  A list is
 * kept as the sorted, unique 128-bit table keys of its canonical addresses
 * (16 bytes per address, no strings), so that membership is a binary search
 * and a reload applies only the difference to the recipient table.
 * Thread: rcptgated's main thread (a command is run synchronously, bounded
 * by LIST_COMMAND_TIMEOUT_S).
 */
#ifndef RG_LIST_H
#define RG_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "khash.h"

#define LIST_MAX_ADDRESSES 50000000u	/* more: the list is refused */
#define LIST_LINE_MAX 4096u		/* longer lines are bad lines */
#define LIST_COMMAND_TIMEOUT_S 600u	/* a list_command running longer is killed */

struct list_source {
	const char *domain;	/* lowercased; addresses of other domains are skipped */
	const char *file;	/* path, or NULL/"" */
	const char *command;	/* /bin/sh -c command, or NULL/"" (file wins if both) */
	bool case_sensitive;
};

struct list_keys {
	struct rg_key128 *k;	/* sorted by (hi, lo), unique */
	size_t n;
};

struct list_read_stats {
	uint64_t lines;		/* lines read */
	uint64_t bad;		/* lines that are not an address (logged: the first few) */
	uint64_t other;		/* addresses of other domains, skipped */
	uint64_t dups;		/* repeated addresses */
};

/*
 * Read a list: its addresses' keys under hash_key into out (replaced only on
 * success).  0, or -errno with err naming the file (and line) or the command
 * (and its exit status): unreadable file, read error, command failing or
 * timing out, more than LIST_MAX_ADDRESSES addresses.  Bad lines are not
 * fatal: counted in st, the first few logged as "file:line: ...".
 */
int list_read(const struct list_source *src, const uint8_t hash_key[16], struct list_keys *out,
	      struct list_read_stats *st, char *err, size_t errlen);

bool list_contains(const struct list_keys *l, const struct rg_key128 *k);

void list_keys_free(struct list_keys *l);

/* Sort and deduplicate keys in place; returns how many duplicates went. */
size_t list_keys_sort(struct list_keys *l);

/*
 * The difference from `from` to `to`: del() for every key only in `from`,
 * then add() for every key only in `to` (deletions first, so they make room
 * for the additions); a key in both is never touched, so an address listed
 * before and after is never absent.  A non-zero return of add() is counted
 * in the result (the keys that could not be added); del()'s is ignored.
 */
typedef int (*list_key_fn)(const struct rg_key128 *k, void *arg);
uint64_t list_diff(const struct list_keys *from, const struct list_keys *to, list_key_fn add,
		   list_key_fn del, void *arg);

#endif
