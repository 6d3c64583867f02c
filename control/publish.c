/*
 * publish.c — creating/re-attaching the shared-memory file and writing the
 * tables (see publish.h).  Re-attaching keeps the data plane's mapping valid
 * across a restart of rcptgated: it goes on serving the old table meanwhile,
 * and sees every verdict re-published from the store as it comes.
 * Thread: main thread only.
 */
#include "publish.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "fleet.h"
#include "log.h"

#define PUBLISH_MAINT_BUDGET 4096u	/* buckets migrated per turn */
#define PUBLISH_EXPIRE_BUDGET 1024u	/* buckets scanned for expiry per turn */
#define PUBLISH_HEARTBEAT_MS 1000u

static void params_from(const struct config *cfg, struct shm_params *sp)
{
	shm_params_default(sp);
	sp->max_lcores = cfg->shm_max_lcores;
	sp->dtable_slots = cfg->shm_dtable_slots;
	sp->rtable_init_log2 = cfg->shm_table_init_log2;
	sp->rtable_max_log2 = cfg->shm_table_max_log2;
	sp->miss_slots = cfg->shm_miss_slots;
	sp->event_slots = cfg->shm_event_slots;
}

int publish_open(struct publish *p, const struct config *cfg, char *err, size_t errlen)
{
	struct shm_params sp;
	char why[256] = "";
	int r;
	memset(p, 0, sizeof(*p));
	p->map.fd = -1;
	params_from(cfg, &sp);
	/* a fleet's nodes hash with one secret: a table made with another one
	 * is not re-attached but replaced (the data plane follows the new file) */
	uint8_t secret[SHM_HASH_KEY_LEN];
	if (cfg->fleet_redis[0]) {
		if ((r = fleet_secret_read(cfg->fleet_secret_file, secret, err, errlen)))
			return r;
		sp.hash_key = secret;
	}
	r = shm_open_writer(cfg->shm_path, &sp, &p->map, why, sizeof(why));
	if (r == 0) {
		p->reattached = true;
		log_msg(LOG_INFO, "shared memory %s re-attached (%llu bytes)", cfg->shm_path,
			(unsigned long long)p->map.size);
	} else {
		if (r != -ENOENT)
			log_msg(LOG_NOTICE, "shared memory %s not reused: %s; creating a new one",
				cfg->shm_path, why);
		r = shm_create(cfg->shm_path, &sp, &p->map, err, errlen);
		if (r)
			return r;
		log_msg(LOG_INFO, "shared memory %s created (%llu bytes)", cfg->shm_path,
			(unsigned long long)p->map.size);
	}
	rtable_writer_init(&p->w, &p->map);
	shm_heartbeat(&p->map);
	return 0;
}

void publish_close(struct publish *p)
{
	if (p->map.base)
		shm_detach(&p->map);
}

void publish_key(const struct publish *p, const char *addr, size_t len, struct rg_key128 *k)
{
	khash128(shm_hdr(&p->map)->hash_key, addr, len, k);
}

int publish_put(struct publish *p, const char *addr, size_t len, uint8_t verdict,
		uint8_t source, uint8_t flags, uint64_t expiry)
{
	struct rg_key128 k;
	struct rtable_val v = {.verdict = verdict, .source = source, .flags = flags,
			       .expiry = expiry};
	publish_key(p, addr, len, &k);
	int r = rtable_put(&p->w, &k, &v);
	if (r)
		p->put_errors++;
	else
		p->puts++;
	return r;
}

int publish_del(struct publish *p, const char *addr, size_t len)
{
	struct rg_key128 k;
	publish_key(p, addr, len, &k);
	int r = rtable_del(&p->w, &k);
	if (!r)
		p->dels++;
	return r;
}

bool publish_get(const struct publish *p, const char *addr, size_t len, struct rtable_val *v)
{
	struct rg_key128 k;
	publish_key(p, addr, len, &k);
	return rtable_get(&p->w, &k, v);
}

int publish_domain(struct publish *p, const char *name, const struct dtable_info *info)
{
	struct rg_key128 k;
	dtable_key(&p->map, name, strlen(name), &k);
	int r = dtable_put(&p->map, &k, info);
	if (r)
		p->dtable_errors++;
	return r;
}

int publish_domain_del(struct publish *p, const char *name)
{
	struct rg_key128 k;
	dtable_key(&p->map, name, strlen(name), &k);
	return dtable_del(&p->map, &k);
}

void publish_tick(struct publish *p, uint64_t now_ms, uint64_t wall_s)
{
	if (now_ms - p->last_heartbeat_ms >= PUBLISH_HEARTBEAT_MS) {
		shm_heartbeat(&p->map);
		__atomic_store_n(&shm_hdr(&p->map)->rtable_count, rtable_count(&p->w),
				 __ATOMIC_RELAXED);
		p->last_heartbeat_ms = now_ms;
	}
	rtable_maintain(&p->w, PUBLISH_MAINT_BUDGET, now_ms * 1000000ull);
	rtable_expire(&p->w, wall_s, PUBLISH_EXPIRE_BUDGET);
}
