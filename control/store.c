/*
 * store.c — LMDB-backed verdict store (see store.h).  LMDB gives crash-safe
 * copy-on-write commits with a single writer, exactly the daemon's model:
 * one write transaction stays open while a loop turn's verdicts accumulate,
 * store_commit() syncs it, and only then are they published to the table.
 * Reads inside the open write transaction see its uncommitted writes.
 *
 * A write LMDB refuses (MDB_MAP_FULL, ...) leaves its transaction unusable:
 * it is aborted at once, so later reads see the committed state and later
 * writes open a new transaction.  The writes it held are lost; the next
 * store_commit() says so, and store_durable() tells, per transaction id,
 * which writes reached the disk (the daemon publishes only those).
 *
 * One daemon per store: an exclusive flock on STORE_LOCK_FILE in the
 * directory, held while the store is open (LMDB itself lets many processes
 * write one environment, one after the other, which would mean two daemons
 * taking turns publishing from one store).
 * Thread: main thread only.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct store {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *wtxn;		/* open write transaction, or NULL */
	unsigned dirty;
	int lost;		/* writes lost by an abort since the last commit: -errno */
	uint64_t txn_id;	/* id of the open (or next) write transaction */
	uint64_t outcome;	/* bit (id % 64): transaction id committed */
	int lockfd;
	char path[256];
};

#define KEY_MAX (RG_ADDR_MAX + 1)

static int mdb_to_errno(int rc)
{
	switch (rc) {
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -ENOSPC;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

/* "local@domain" -> "domain\0local".  Returns key length or -EINVAL. */
static int make_key(const char *addr, size_t len, char *key)
{
	size_t at = len;
	while (at > 0 && addr[at - 1] != '@')
		at--;
	if (at <= 1 || at == len || len >= KEY_MAX)
		return -EINVAL; /* no '@', empty local part, empty domain, too long */
	size_t dlen = len - at, llen = at - 1;
	memcpy(key, addr + at, dlen);
	key[dlen] = 0;
	memcpy(key + dlen + 1, addr, llen);
	return (int)(dlen + 1 + llen);
}

/* "domain\0local" -> "local@domain" NUL-terminated; returns length. */
static size_t key_to_addr(const char *key, size_t klen, char *out)
{
	size_t dlen = strnlen(key, klen);
	size_t llen = klen - dlen - 1;
	if (dlen >= klen)
		llen = 0;
	memcpy(out, key + dlen + 1, llen);
	out[llen] = '@';
	memcpy(out + llen + 1, key, dlen);
	out[llen + 1 + dlen] = 0;
	return llen + 1 + dlen;
}

/* The exclusive lock of one store: -EBUSY (err says who holds it). */
static int lock_dir(struct store *s, const char *dir, char *err, size_t errlen)
{
	char lp[300], pid[32] = "";
	snprintf(lp, sizeof(lp), "%s/" STORE_LOCK_FILE, dir);
	s->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (s->lockfd < 0) {
		int e = errno;
		snprintf(err, errlen, "store %s: %s: %s", dir, lp, strerror(e));
		return -e;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB)) {
		int e = errno;
		ssize_t n = pread(s->lockfd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		close(s->lockfd);
		s->lockfd = -1;
		if (e == EWOULDBLOCK) {
			snprintf(err, errlen, "store %s is in use by another rcptgated%s%s%s", dir,
				 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
			return -EBUSY;
		}
		snprintf(err, errlen, "store %s: lock %s: %s", dir, lp, strerror(e));
		return -e;
	}
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(s->lockfd, 0) || pwrite(s->lockfd, pid, (size_t)n, 0) != n) {
		/* the pid is for the message only: the lock is what counts */
	}
	return 0;
}

int store_open(struct store **out, const char *dir, uint32_t map_mb, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->lockfd = -1;
	s->txn_id = 1;
	snprintf(s->path, sizeof(s->path), "%s", dir);
	if (mkdir(dir, 0750) && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "store %s: %s", dir, strerror(e));
		free(s);
		return -e;
	}
	int lr = lock_dir(s, dir, err, errlen);
	if (lr) {
		free(s);
		return lr;
	}
	int rc = mdb_env_create(&s->env);
	if (!rc)
		rc = mdb_env_set_mapsize(s->env, (size_t)map_mb << 20);
	if (!rc)
		rc = mdb_env_set_maxdbs(s->env, 2);
	if (!rc)
		rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0640);
	if (rc) {
		snprintf(err, errlen, "store %s: %s", dir, mdb_strerror(rc));
		if (s->env)
			mdb_env_close(s->env);
		close(s->lockfd);
		free(s);
		return mdb_to_errno(rc);
	}
	MDB_txn *txn;
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (!rc)
		rc = mdb_dbi_open(txn, "verdicts", MDB_CREATE, &s->dbi);
	if (!rc)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc) {
		snprintf(err, errlen, "store %s: %s", dir, mdb_strerror(rc));
		mdb_env_close(s->env);
		close(s->lockfd);
		free(s);
		return mdb_to_errno(rc);
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_commit(s);
	mdb_env_close(s->env);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the lock */
	free(s);
}

static void txn_end(struct store *s, bool committed)
{
	uint64_t bit = 1ull << (s->txn_id % 64);
	s->outcome = committed ? (s->outcome | bit) : (s->outcome & ~bit);
	s->txn_id++;
	s->wtxn = NULL;
	s->dirty = 0;
}

/* A write failed: its transaction cannot be used any more (LMDB marks it
 * broken); abort it now so that reads and later writes are not affected. */
static int write_failed(struct store *s, int rc)
{
	int e = mdb_to_errno(rc);
	if (s->wtxn) {
		mdb_txn_abort(s->wtxn);
		txn_end(s, false);
	}
	if (!s->lost)
		s->lost = e;
	return e;
}

uint64_t store_txn(const struct store *s)
{
	return s->txn_id;
}

bool store_durable(const struct store *s, uint64_t txn)
{
	return txn < s->txn_id && s->txn_id - txn <= 64 && (s->outcome >> (txn % 64) & 1);
}

static int wtxn(struct store *s)
{
	if (s->wtxn)
		return 0;
	int rc = mdb_txn_begin(s->env, NULL, 0, &s->wtxn);
	if (rc) {
		s->wtxn = NULL;
		return mdb_to_errno(rc);
	}
	return 0;
}

/* A read transaction, or the open write transaction (to see its writes). */
static int rtxn(struct store *s, MDB_txn **txn, int *own)
{
	if (s->wtxn) {
		*txn = s->wtxn;
		*own = 0;
		return 0;
	}
	*own = 1;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	return rc ? mdb_to_errno(rc) : 0;
}

int store_get(struct store *s, const char *addr, size_t len, struct store_rec *rec)
{
	char key[KEY_MAX];
	int klen = make_key(addr, len, key);
	if (klen < 0)
		return klen;
	MDB_txn *txn;
	int own, r = rtxn(s, &txn, &own);
	if (r)
		return r;
	MDB_val k = {.mv_size = (size_t)klen, .mv_data = key}, v;
	int rc = mdb_get(txn, s->dbi, &k, &v);
	if (!rc) {
		memset(rec, 0, sizeof(*rec));
		memcpy(rec, v.mv_data, v.mv_size < sizeof(*rec) ? v.mv_size : sizeof(*rec));
		rec->reply[STORE_REPLY_MAX - 1] = 0;
	}
	if (own)
		mdb_txn_abort(txn);
	if (!rc && rec->version != STORE_REC_VERSION)
		return -ENOENT; /* a record from another format: treat as absent */
	return rc ? mdb_to_errno(rc) : 0;
}

int store_put(struct store *s, const char *addr, size_t len, const struct store_rec *rec)
{
	char key[KEY_MAX];
	int klen = make_key(addr, len, key);
	if (klen < 0)
		return klen;
	int r = wtxn(s);
	if (r)
		return r;
	/* store the reply only up to its NUL: most records are short */
	size_t rlen = strnlen(rec->reply, STORE_REPLY_MAX - 1) + 1;
	MDB_val k = {.mv_size = (size_t)klen, .mv_data = key};
	MDB_val v = {.mv_size = offsetof(struct store_rec, reply) + rlen, .mv_data = (void *)rec};
	int rc = mdb_put(s->wtxn, s->dbi, &k, &v, 0);
	if (rc)
		return write_failed(s, rc);
	s->dirty++;
	return 0;
}

int store_del(struct store *s, const char *addr, size_t len)
{
	char key[KEY_MAX];
	int klen = make_key(addr, len, key);
	if (klen < 0)
		return klen;
	int r = wtxn(s);
	if (r)
		return r;
	MDB_val k = {.mv_size = (size_t)klen, .mv_data = key};
	int rc = mdb_del(s->wtxn, s->dbi, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return -ENOENT; /* the transaction is still good */
	if (rc)
		return write_failed(s, rc);
	s->dirty++;
	return 0;
}

int store_commit(struct store *s)
{
	int lost = s->lost;
	s->lost = 0;
	if (!s->wtxn)
		return lost;
	int rc = mdb_txn_commit(s->wtxn); /* frees the transaction either way */
	txn_end(s, rc == 0);
	return rc ? mdb_to_errno(rc) : lost;
}

unsigned store_dirty(const struct store *s)
{
	return s->dirty + (s->lost ? 1u : 0u);
}

long store_scan(struct store *s, const char *after, size_t max, store_fn fn, void *arg,
		char *next)
{
	/* the resume key first: after and next may be the same buffer */
	char key[KEY_MAX];
	MDB_val k, v;
	int klen = 0;
	if (after && after[0]) {
		klen = make_key(after, strnlen(after, RG_ADDR_MAX + 1), key);
		if (klen < 0)
			klen = 0;
	}
	MDB_txn *txn;
	int own, r = rtxn(s, &txn, &own);
	next[0] = 0;
	if (r)
		return r;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->dbi, &cur);
	if (rc) {
		if (own)
			mdb_txn_abort(txn);
		return mdb_to_errno(rc);
	}
	if (klen > 0) {
		k.mv_size = (size_t)klen;
		k.mv_data = key;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		/* skip the resume key itself */
		if (!rc && k.mv_size == (size_t)klen && !memcmp(k.mv_data, key, (size_t)klen))
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	long n = 0;
	char addr[KEY_MAX + 1];
	while (!rc && (size_t)n < max) {
		struct store_rec rec;
		memset(&rec, 0, sizeof(rec));
		memcpy(&rec, v.mv_data, v.mv_size < sizeof(rec) ? v.mv_size : sizeof(rec));
		rec.reply[STORE_REPLY_MAX - 1] = 0;
		size_t alen = key_to_addr(k.mv_data, k.mv_size, addr);
		n++;
		if (alen > RG_ADDR_MAX)
			alen = RG_ADDR_MAX;
		memcpy(next, addr, alen);
		next[alen] = 0;
		if (rec.version == STORE_REC_VERSION && fn(addr, alen, &rec, arg))
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND)
		next[0] = 0;
	mdb_cursor_close(cur);
	if (own)
		mdb_txn_abort(txn);
	return n;
}

int store_flush(struct store *s, const char *domain, uint64_t *removed)
{
	int r = wtxn(s);
	if (r)
		return r;
	*removed = 0;
	if (!domain) {
		MDB_stat st;
		mdb_stat(s->wtxn, s->dbi, &st);
		int rc = mdb_drop(s->wtxn, s->dbi, 0);
		if (rc)
			return write_failed(s, rc);
		*removed = st.ms_entries;
		s->dirty++;
		return 0;
	}
	MDB_cursor *cur;
	int rc = mdb_cursor_open(s->wtxn, s->dbi, &cur);
	if (rc)
		return write_failed(s, rc);
	char key[KEY_MAX];
	size_t dlen = strlen(domain);
	if (dlen + 1 >= KEY_MAX) {
		mdb_cursor_close(cur);
		return -EINVAL;
	}
	memcpy(key, domain, dlen + 1);
	MDB_val k = {.mv_size = dlen + 1, .mv_data = key}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (!rc && k.mv_size > dlen && !memcmp(k.mv_data, key, dlen + 1)) {
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		(*removed)++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
		if (rc == MDB_NOTFOUND || rc == EINVAL)
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return write_failed(s, rc);
	s->dirty++;
	return 0;
}

uint64_t store_count(struct store *s)
{
	MDB_txn *txn;
	int own;
	if (rtxn(s, &txn, &own))
		return 0;
	MDB_stat st;
	uint64_t n = mdb_stat(txn, s->dbi, &st) ? 0 : st.ms_entries;
	if (own)
		mdb_txn_abort(txn);
	return n;
}

const char *store_path(const struct store *s)
{
	return s->path;
}
