/*
 * dns.c — MX and address lookups in a helper thread (see dns.h).  libresolv's
 * res_nquery and getaddrinfo block, so they run off the event loop; each
 * finished answer is queued back and the loop is woken through an eventfd.
 * Threads: the main thread submits and receives; one helper thread resolves.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core.h"

struct dns_req {
	struct dns_req *next;
	char domain[RG_DOMAIN_MAX + 1];
	struct config_dest dests[CONFIG_MAX_DESTS];
	unsigned ndest;
	uint16_t mx_port;
	uint32_t timeout_ms;
	struct sockaddr_in ns;	/* nameserver override, sin_family 0 = none */
	dns_cb cb;
	void *arg;
	struct dns_answer ans;
};

static struct {
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dns_req *todo, *todo_tail, *done;
	unsigned queued;
	int efd;
	int running, stop;
	struct sockaddr_in ns;	/* dns_set_server(); main thread */
} dq = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .efd = -1};

#define DNS_MIN_TTL 30u

/* Append the addresses of host to a; returns addresses added. */
static unsigned add_host(struct dns_answer *a, const char *host, uint16_t port)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL, *ai;
	unsigned added = 0;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc) {
		/* loopback-only hosts have no "configured" address family */
		hints.ai_flags = 0;
		rc = getaddrinfo(host, NULL, &hints, &res);
	}
	if (rc) {
		snprintf(a->errmsg, sizeof(a->errmsg), "%s: %s", host, gai_strerror(rc));
		return 0;
	}
	for (ai = res; ai && a->n < DNS_MAX_TARGETS; ai = ai->ai_next) {
		struct dns_target *t = &a->t[a->n];
		if (ai->ai_addrlen > sizeof(t->sa))
			continue;
		memcpy(&t->sa, ai->ai_addr, ai->ai_addrlen);
		t->salen = ai->ai_addrlen;
		if (t->sa.ss_family == AF_INET)
			((struct sockaddr_in *)&t->sa)->sin_port = htons(port);
		else if (t->sa.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&t->sa)->sin6_port = htons(port);
		else
			continue;
		snprintf(t->host, sizeof(t->host), "%s", host);
		t->port = port;
		a->n++;
		added++;
	}
	freeaddrinfo(res);
	return added;
}

struct mx {
	uint16_t pref;
	char host[NS_MAXDNAME];
};

static int cmp_mx(const void *x, const void *y)
{
	const struct mx *a = x, *b = y;
	return (int)a->pref - (int)b->pref;
}

#define DNS_MAX_MX 16u

static void resolve_mx(struct dns_req *r)
{
	struct dns_answer *a = &r->ans;
	struct __res_state st;
	memset(&st, 0, sizeof(st));
	if (res_ninit(&st)) {
		a->err = -EIO;
		snprintf(a->errmsg, sizeof(a->errmsg), "res_ninit failed");
		return;
	}
	st.retrans = (int)(r->timeout_ms / 1000) ? (int)(r->timeout_ms / 1000) : 1;
	st.retry = 1;
	if (r->ns.sin_family == AF_INET) {
		st.nscount = 1;
		st.nsaddr_list[0] = r->ns;
	}
	unsigned char buf[8192];
	int len = res_nquery(&st, r->domain, ns_c_in, ns_t_mx, buf, sizeof(buf));
	if (len < 0) {
		int herr = st.res_h_errno;
		res_nclose(&st);
		if (herr == HOST_NOT_FOUND) {
			a->err = -ENOENT;
			snprintf(a->errmsg, sizeof(a->errmsg), "%s: no such domain", r->domain);
			return;
		}
		if (herr == NO_DATA) {
			/* RFC 5321 5.1: no MX, the domain itself is the implicit MX */
			a->ttl = DNS_MIN_TTL;
			if (!add_host(a, r->domain, r->mx_port)) {
				a->err = -EHOSTUNREACH;
			}
			return;
		}
		a->err = -ETIMEDOUT;
		snprintf(a->errmsg, sizeof(a->errmsg), "%s: MX lookup failed (%s)", r->domain,
			 hstrerror(herr));
		return;
	}
	res_nclose(&st);
	ns_msg msg;
	if (ns_initparse(buf, len, &msg)) {
		a->err = -EIO;
		snprintf(a->errmsg, sizeof(a->errmsg), "%s: unparsable MX answer", r->domain);
		return;
	}
	struct mx mx[DNS_MAX_MX];
	unsigned nmx = 0;
	uint32_t ttl = UINT32_MAX;
	int count = ns_msg_count(msg, ns_s_an);
	for (int i = 0; i < count && nmx < DNS_MAX_MX; i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) || ns_rr_type(rr) != ns_t_mx ||
		    ns_rr_rdlen(rr) < 3)
			continue;
		const unsigned char *rd = ns_rr_rdata(rr);
		mx[nmx].pref = (uint16_t)(rd[0] << 8 | rd[1]);
		if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2, mx[nmx].host,
				       sizeof(mx[nmx].host)) < 0)
			continue;
		if (ns_rr_ttl(rr) < ttl)
			ttl = ns_rr_ttl(rr);
		nmx++;
	}
	if (nmx == 1 && (mx[0].host[0] == 0 || !strcmp(mx[0].host, "."))) {
		a->null_mx = true;
		a->ttl = ttl;
		a->err = -EHOSTUNREACH;
		snprintf(a->errmsg, sizeof(a->errmsg), "%s: null MX (accepts no mail)", r->domain);
		return;
	}
	if (nmx == 0) {
		a->ttl = DNS_MIN_TTL;
		if (!add_host(a, r->domain, r->mx_port))
			a->err = -EHOSTUNREACH;
		return;
	}
	qsort(mx, nmx, sizeof(mx[0]), cmp_mx);
	for (unsigned i = 0; i < nmx; i++) {
		unsigned first = a->n;
		add_host(a, mx[i].host, r->mx_port);
		for (unsigned k = first; k < a->n; k++) {
			a->t[k].pref = mx[i].pref;
			a->t[k].from_mx = true;
			a->t[k].backup = a->t[k].pref > a->t[0].pref;
		}
	}
	a->ttl = ttl < DNS_MIN_TTL ? DNS_MIN_TTL : ttl;
	if (a->n == 0) {
		a->err = -EHOSTUNREACH;
		if (!a->errmsg[0])
			snprintf(a->errmsg, sizeof(a->errmsg), "%s: MX hosts have no address",
				 r->domain);
	} else {
		a->errmsg[0] = 0;
	}
}

static void resolve(struct dns_req *r)
{
	memset(&r->ans, 0, sizeof(r->ans));
	if (r->ndest == 0) {
		resolve_mx(r);
		return;
	}
	r->ans.ttl = 3600;
	for (unsigned i = 0; i < r->ndest; i++)
		add_host(&r->ans, r->dests[i].host, r->dests[i].port);
	if (r->ans.n == 0)
		r->ans.err = -EHOSTUNREACH;
	else
		r->ans.errmsg[0] = 0;
}

static void *helper(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&dq.mu);
	for (;;) {
		while (!dq.todo && !dq.stop)
			pthread_cond_wait(&dq.cv, &dq.mu);
		if (dq.stop)
			break;
		struct dns_req *r = dq.todo;
		dq.todo = r->next;
		if (!dq.todo)
			dq.todo_tail = NULL;
		pthread_mutex_unlock(&dq.mu);
		resolve(r);
		pthread_mutex_lock(&dq.mu);
		r->next = dq.done;
		dq.done = r;
		uint64_t one = 1;
		if (write(dq.efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow in practice; nothing to do */
		}
	}
	pthread_mutex_unlock(&dq.mu);
	return NULL;
}

static void on_efd(int fd, uint32_t events, void *arg)
{
	(void)events;
	(void)arg;
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: spurious wake-up */
	}
	pthread_mutex_lock(&dq.mu);
	struct dns_req *list = dq.done;
	dq.done = NULL;
	pthread_mutex_unlock(&dq.mu);
	while (list) {
		struct dns_req *r = list;
		list = r->next;
		pthread_mutex_lock(&dq.mu);
		dq.queued--;
		pthread_mutex_unlock(&dq.mu);
		r->cb(&r->ans, r->arg);
		free(r);
	}
}

int dns_start(void)
{
	if (dq.running)
		return 0;
	dq.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (dq.efd < 0)
		return -errno;
	int r = daemon_add_fd(dq.efd, EPOLLIN, on_efd, NULL);
	if (r) {
		close(dq.efd);
		dq.efd = -1;
		return r;
	}
	dq.stop = 0;
	r = pthread_create(&dq.thr, NULL, helper, NULL);
	if (r) {
		daemon_del_fd(dq.efd);
		close(dq.efd);
		dq.efd = -1;
		return -r;
	}
	dq.running = 1;
	return 0;
}

void dns_stop(void)
{
	if (!dq.running)
		return;
	pthread_mutex_lock(&dq.mu);
	dq.stop = 1;
	pthread_cond_signal(&dq.cv);
	pthread_mutex_unlock(&dq.mu);
	pthread_join(dq.thr, NULL);
	daemon_del_fd(dq.efd);
	close(dq.efd);
	dq.efd = -1;
	while (dq.todo) {
		struct dns_req *r = dq.todo;
		dq.todo = r->next;
		free(r);
	}
	while (dq.done) {
		struct dns_req *r = dq.done;
		dq.done = r->next;
		free(r);
	}
	dq.todo_tail = NULL;
	dq.queued = 0;
	dq.running = 0;
}

int dns_set_server(const char *spec)
{
	memset(&dq.ns, 0, sizeof(dq.ns));
	if (!spec || !spec[0])
		return 0;
	char host[64];
	unsigned long port = 53;
	snprintf(host, sizeof(host), "%s", spec);
	char *colon = strchr(host, ':');
	if (colon) {
		char *end;
		*colon = 0;
		port = strtoul(colon + 1, &end, 10);
		if (*end || port == 0 || port > 65535)
			return -EINVAL;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -EINVAL;
	dq.ns = a;
	return 0;
}

int dns_resolve(const char *domain, const struct config_dest *dests, unsigned ndest,
		uint16_t mx_port, uint32_t timeout_ms, dns_cb cb, void *arg)
{
	if (!dq.running)
		return -ENOTCONN;
	if (ndest > CONFIG_MAX_DESTS)
		return -EINVAL;
	struct dns_req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	if (ndest)
		memcpy(r->dests, dests, ndest * sizeof(*dests));
	r->ndest = ndest;
	r->mx_port = mx_port;
	r->timeout_ms = timeout_ms;
	r->ns = dq.ns;
	r->cb = cb;
	r->arg = arg;
	pthread_mutex_lock(&dq.mu);
	if (dq.queued >= DNS_MAX_QUEUE) {
		pthread_mutex_unlock(&dq.mu);
		free(r);
		return -EAGAIN;
	}
	dq.queued++;
	if (dq.todo_tail)
		dq.todo_tail->next = r;
	else
		dq.todo = r;
	dq.todo_tail = r;
	pthread_cond_signal(&dq.cv);
	pthread_mutex_unlock(&dq.mu);
	return 0;
}
