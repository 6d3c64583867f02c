/*
 * dns.h — resolving a domain's callout destinations without blocking the
 * event loop: MX lookup (res_nquery from libresolv, RFC 5321 5.1 ordering:
 * preference, then the implicit MX when there is none, RFC 7505 null MX
 * recognised, hosts of the best preference first and the others marked
 * backup) and host-name resolution (getaddrinfo), both run in one helper
 * thread; answers come back to the loop through an eventfd.
 * Threads: dns_start/dns_resolve/callbacks in the main thread; the lookups
 * themselves in the helper thread.
 */
#ifndef RG_DNS_H
#define RG_DNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

#define DNS_MAX_TARGETS 16u	/* addresses kept per answer */
#define DNS_MAX_QUEUE 1024u	/* requests waiting for the helper thread */

struct dns_target {
	struct sockaddr_storage sa;
	socklen_t salen;
	char host[CONFIG_HOST_MAX];
	uint16_t port;
	uint16_t pref;		/* MX preference (0 for explicit destinations) */
	bool from_mx;		/* found by MX lookup (not configured, not implicit) */
	bool backup;		/* an MX of higher preference than the best that
				 * resolved: used only when all of those fail */
};

struct dns_answer {
	int err;		/* 0, -ENOENT (no such domain), -ETIMEDOUT, -EHOSTUNREACH */
	char errmsg[320];
	bool null_mx;		/* domain publishes "MX 0 ." (accepts no mail) */
	uint32_t ttl;		/* seconds the answer may be kept */
	unsigned n;
	struct dns_target t[DNS_MAX_TARGETS];
};

typedef void (*dns_cb)(const struct dns_answer *a, void *arg);

int dns_start(void);
void dns_stop(void);

/* Send MX queries to this server ("IPv4[:port]") instead of the ones in
 * /etc/resolv.conf; NULL or "" = the system's.  0 or -EINVAL. */
int dns_set_server(const char *spec);

/* Resolve the explicit destinations, or the domain's MX hosts when ndest is 0.
 * cb runs later in the main thread.  0, or -EAGAIN when the queue is full. */
int dns_resolve(const char *domain, const struct config_dest *dests, unsigned ndest,
		uint16_t mx_port, uint32_t timeout_ms, dns_cb cb, void *arg);

#endif
