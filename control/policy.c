/*
 * policy.c — the Postfix policy delegation service (see policy.h): a
 * resumable parser of name=value requests, the mapping of the core's verdict
 * to an action, and the listeners and connections, all non-blocking on
 * rcptgated's event loop.
 *
 * Thread: rcptgated's main (event-loop) thread.
 *
 * Hand-written: the protocol is a few lines of text, and no library speaks
 * it; the parser follows the house rule for network input (byte-driven
 * state machine, bounded fields, no str* on the input).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"
#include "dtable.h"
#include "listen.h"
#include "log.h"
#include "policy.h"

/* ---------------------------------------------------------------------- */
/* the request parser                                                      */

enum { PS_NAME = 0, PS_VALUE = 1 };

static const struct {
	const char *name;
	size_t off, size;
} attrs[PA__COUNT] = {
#define A(id, n, f) [id] = {n, offsetof(struct policy_req, f), sizeof(((struct policy_req *)0)->f)}
	A(PA_REQUEST, "request", request),
	A(PA_PROTOCOL_STATE, "protocol_state", protocol_state),
	A(PA_RECIPIENT, "recipient", recipient),
	A(PA_SENDER, "sender", sender),
	A(PA_CLIENT_ADDRESS, "client_address", client_address),
	A(PA_CLIENT_NAME, "client_name", client_name),
	A(PA_HELO_NAME, "helo_name", helo_name),
	A(PA_QUEUE_ID, "queue_id", queue_id),
	A(PA_INSTANCE, "instance", instance),
#undef A
};

void policy_parser_init(struct policy_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->state = PS_NAME;
	p->field = -1;
}

static int attr_by_name(const char *n, size_t len)
{
	for (int i = 0; i < PA__COUNT; i++)
		if (strlen(attrs[i].name) == len && memcmp(attrs[i].name, n, len) == 0)
			return i;
	return -1;
}

static char *field_ptr(struct policy_parser *p)
{
	return (char *)&p->req + attrs[p->field].off;
}

static int value_put(struct policy_parser *p, uint8_t c)
{
	if (++p->line > POLICY_LINE_MAX)
		return POLICY_E_LINE;
	if (p->field < 0)
		return 0;
	if (p->vlen + 1 < attrs[p->field].size) {
		char *f = field_ptr(p);
		f[p->vlen++] = (char)c;
		f[p->vlen] = '\0';
	} else {
		p->req.toolong |= 1u << p->field;
	}
	return 0;
}

int policy_parse(struct policy_parser *p, const uint8_t *buf, size_t len, size_t *used)
{
	size_t i;
	int rc;

	for (i = 0; i < len; i++) {
		uint8_t c = buf[i];

		if (++p->total > POLICY_REQ_MAX) {
			*used = i + 1;
			return POLICY_E_SIZE;
		}
		if (c == '\0') {
			*used = i + 1;
			return POLICY_E_NUL;
		}
		if (p->state == PS_NAME) {
			if (c == '\n') {
				if (p->nlen != 0) {
					*used = i + 1;
					return POLICY_E_SYNTAX;
				}
				*used = i + 1;
				p->cr = false;
				return POLICY_P_DONE;
			}
			if (p->cr || (c == '\r' && p->nlen != 0)) {
				/* a CR is only allowed as the first half of CRLF */
				*used = i + 1;
				return POLICY_E_SYNTAX;
			}
			if (c == '\r') {
				p->cr = true;
				continue;
			}
			if (c == '=') {
				if (p->nlen == 0) {
					*used = i + 1;
					return POLICY_E_SYNTAX;
				}
				if (++p->req.nattrs > POLICY_ATTRS_MAX) {
					*used = i + 1;
					return POLICY_E_ATTRS;
				}
				p->field = attr_by_name(p->name, p->nlen);
				if (p->field >= 0) {
					/* the last occurrence wins */
					p->req.present |= 1u << p->field;
					p->req.toolong &= ~(1u << p->field);
					field_ptr(p)[0] = '\0';
				}
				p->vlen = 0;
				p->line++;
				p->state = PS_VALUE;
				continue;
			}
			if (c < 0x20 || c == 0x7f || p->nlen >= POLICY_NAME_MAX) {
				*used = i + 1;
				return POLICY_E_SYNTAX;
			}
			if (++p->line > POLICY_LINE_MAX) {
				*used = i + 1;
				return POLICY_E_LINE;
			}
			p->name[p->nlen++] = (char)c;
			continue;
		}
		/* PS_VALUE */
		if (c == '\n') {
			p->cr = false;	/* a CR before LF is the line end's, not the value's */
			p->state = PS_NAME;
			p->nlen = 0;
			p->line = 0;
			p->field = -1;
			continue;
		}
		if (p->cr) {
			p->cr = false;
			rc = value_put(p, '\r');
			if (rc < 0) {
				*used = i + 1;
				return rc;
			}
		}
		if (c == '\r') {
			p->cr = true;
			continue;
		}
		rc = value_put(p, c);
		if (rc < 0) {
			*used = i + 1;
			return rc;
		}
	}
	*used = len;
	return POLICY_P_MORE;
}

const char *policy_strerror(int err)
{
	switch (err) {
	case POLICY_P_MORE: return "incomplete request";
	case POLICY_P_DONE: return "complete request";
	case POLICY_E_LINE: return "attribute line too long";
	case POLICY_E_SIZE: return "request too large";
	case POLICY_E_ATTRS: return "too many attributes";
	case POLICY_E_SYNTAX: return "malformed attribute line";
	case POLICY_E_NUL: return "NUL octet in request";
	}
	return "unknown error";
}

enum policy_kind policy_classify(const struct policy_req *r)
{
	if (!(r->present & (1u << PA_REQUEST)) || strcmp(r->request, "smtpd_access_policy") != 0)
		return PK_BAD_REQUEST;
	if (!(r->present & (1u << PA_PROTOCOL_STATE)))
		return PK_MISSING_STATE;
	if (strcasecmp(r->protocol_state, "RCPT") != 0)
		return PK_NOT_RCPT;
	if (!(r->present & (1u << PA_RECIPIENT)) || r->recipient[0] == '\0')
		return PK_NO_RECIPIENT;
	if (r->toolong & (1u << PA_RECIPIENT))
		return PK_RECIPIENT_TOOLONG;
	return PK_CHECK;
}

int policy_reply_dunno(char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "action=DUNNO\n\n");

	return n < 0 || (size_t)n >= outlen ? -ENOSPC : n;
}

int policy_reply(const struct core_check *res, char *out, size_t outlen)
{
	bool defer = res->miss_policy == DT_MISS_DEFER && !res->failopen;
	const char *a;
	int n;

	switch (res->verdict) {
	case CORE_V_INVALID:
		a = res->reject_code == 450 ? "action=" POLICY_REJECT_450_TEXT "\n\n"
					    : "action=" POLICY_REJECT_TEXT "\n\n";
		break;
	case CORE_V_NONE:
	case CORE_V_TEMPFAIL:
		if (defer) {
			a = "action=" POLICY_DEFER_TEXT "\n\n";
			break;
		}
		return policy_reply_dunno(out, outlen);	/* pass: the destination decides */
	default:
		return policy_reply_dunno(out, outlen);
	}
	if (res->warn)
		return policy_reply_dunno(out, outlen); /* dry run: the caller logs a */
	n = snprintf(out, outlen, "%s", a);
	return n < 0 || (size_t)n >= outlen ? -ENOSPC : n;
}

/* ---------------------------------------------------------------------- */
/* connections                                                             */

#define POLICY_IN_CHUNK 4096u
#define POLICY_SWEEP_MS 1000u

enum pconn_state { PC_READ, PC_WAIT, PC_WRITE };

struct pconn {
	int fd;
	enum pconn_state state;
	uint64_t last_ms;
	struct policy_parser parser;
	uint8_t in[POLICY_IN_CHUNK];	/* received, not yet parsed */
	size_t inoff, inlen;
	struct core_check chk;		/* the core's answer so far */
	uint64_t check_id;		/* core_check_recipient() id while waiting */
	uint64_t wait_timer;
	char out[POLICY_REPLY_MAX];
	size_t outlen, outpos;
};

struct plisten {
	int fd;
	struct listen_state ls;	/* accept state (pauses) */
	bool unix_sock;
	char path[CONFIG_PATH_MAX];
};

static struct {
	struct plisten lis[POLICY_LISTEN_MAX];
	unsigned nlis;
	char listen_spec[CONFIG_PATH_MAX];
	struct pconn *conn[POLICY_CLIENTS_HARD_MAX];
	unsigned max_clients;
	uint32_t timeout_ms;
	uint32_t sock_mode;		/* Unix listeners' mode and group */
	int32_t sock_gid;
	struct config_cidr allow[CONFIG_MAX_ALLOW]; /* TCP clients allowed */
	unsigned nallow;
	uint64_t sweep_timer;
	uint64_t st[POLICY_ST__COUNT];
	bool started;
} pol;

static const char *const pol_stat_names[POLICY_ST__COUNT] = {
#define POLICY_STAT_NAME(id, name, help) [POLICY_ST_##id] = name,
	POLICY_STATS_LIST(POLICY_STAT_NAME)
#undef POLICY_STAT_NAME
};

static const char *const pol_stat_help[POLICY_ST__COUNT] = {
#define POLICY_STAT_HELP(id, name, help) [POLICY_ST_##id] = help,
	POLICY_STATS_LIST(POLICY_STAT_HELP)
#undef POLICY_STAT_HELP
};

static void pconn_process(struct pconn *c);

static void pconn_close(struct pconn *c, unsigned slot)
{
	if (c->check_id)
		core_cancel(c->check_id);
	if (c->wait_timer)
		daemon_timer_cancel(c->wait_timer);
	daemon_del_fd(c->fd);
	close(c->fd);
	free(c);
	pol.conn[slot] = NULL;
}

static unsigned pconn_slot_of(const struct pconn *c)
{
	for (unsigned i = 0; i < POLICY_CLIENTS_HARD_MAX; i++)
		if (pol.conn[i] == c)
			return i;
	return POLICY_CLIENTS_HARD_MAX;
}

static void pconn_drop(struct pconn *c)
{
	unsigned s = pconn_slot_of(c);

	if (s < POLICY_CLIENTS_HARD_MAX)
		pconn_close(c, s);
}

static void pconn_send(struct pconn *c, int len)
{
	if (len < 0) {
		/* cannot happen: POLICY_REPLY_MAX holds the longest answer */
		len = policy_reply_dunno(c->out, sizeof(c->out));
	}
	c->outlen = (size_t)len;
	c->outpos = 0;
	c->state = PC_WRITE;
	c->last_ms = daemon_now_ms();
	pol.st[POLICY_ST_REQUESTS]++;
	if (c->out[7] == '5')
		pol.st[POLICY_ST_REJECT]++;
	else if (c->out[7] == '4')
		pol.st[POLICY_ST_DEFER]++;
	else
		pol.st[POLICY_ST_DUNNO]++;
	daemon_mod_fd(c->fd, EPOLLOUT);
}

static void pconn_answer_check(struct pconn *c)
{
	if (c->chk.warn) {
		/* dry run: say what the answer would have been, answer DUNNO */
		struct core_check real = c->chk;
		real.warn = false;
		int n = policy_reply(&real, c->out, sizeof(c->out));
		if (n > 7 && (c->out[7] == '4' || c->out[7] == '5')) {
			pol.st[POLICY_ST_WARNED]++;
			c->out[n - 2] = 0;
			log_kind(LOG_K_REJECT, LOG_INFO,
				 "policy: reject_warning: <%s>: would have answered %s (action = warn)",
				 c->chk.addr, c->out + 7);
		}
	}
	int n = policy_reply(&c->chk, c->out, sizeof(c->out));
	/* a refusal counts toward the fleet's harvest sums, as the data plane's do */
	if (n > 7 && c->out[7] == '5' && !c->chk.warn)
		core_note_reject(c->parser.req.client_address);
	pconn_send(c, n);
}

static void check_done(const struct core_check *res, void *arg)
{
	struct pconn *c = arg;

	c->check_id = 0;
	if (c->wait_timer) {
		daemon_timer_cancel(c->wait_timer);
		c->wait_timer = 0;
	}
	if (c->state != PC_WAIT)
		return;
	c->chk = *res;
	pol.st[POLICY_ST_WAITED]++;
	pconn_answer_check(c);
}

static void check_timeout(void *arg)
{
	struct pconn *c = arg;

	c->wait_timer = 0;
	if (c->check_id) {
		core_cancel(c->check_id);
		c->check_id = 0;
	}
	if (c->state != PC_WAIT)
		return;
	pol.st[POLICY_ST_WAIT_TIMEOUT]++;
	c->chk.verdict = CORE_V_NONE;
	pconn_answer_check(c);
}

static void pconn_request(struct pconn *c)
{
	const struct policy_req *r = &c->parser.req;
	uint64_t id = 0;
	int rc;

	switch (policy_classify(r)) {
	case PK_CHECK:
		break;
	case PK_NOT_RCPT:
		pol.st[POLICY_ST_NOT_RCPT]++;
		pconn_send(c, policy_reply_dunno(c->out, sizeof(c->out)));
		return;
	case PK_NO_RECIPIENT:
		pol.st[POLICY_ST_NO_RECIPIENT]++;
		pconn_send(c, policy_reply_dunno(c->out, sizeof(c->out)));
		return;
	case PK_BAD_REQUEST:
		pol.st[POLICY_ST_BAD_REQUEST]++;
		pconn_send(c, policy_reply_dunno(c->out, sizeof(c->out)));
		return;
	case PK_MISSING_STATE:
		pol.st[POLICY_ST_MISSING_STATE]++;
		pconn_send(c, policy_reply_dunno(c->out, sizeof(c->out)));
		return;
	case PK_RECIPIENT_TOOLONG:
		pol.st[POLICY_ST_BAD_ADDR]++;
		pconn_send(c, policy_reply_dunno(c->out, sizeof(c->out)));
		return;
	}
	pol.st[POLICY_ST_RCPT]++;
	memset(&c->chk, 0, sizeof(c->chk));
	c->state = PC_WAIT;
	rc = core_check_recipient(r->recipient, &c->chk, check_done, c, &id);
	if (rc < 0) {
		pol.st[POLICY_ST_BAD_ADDR]++;
		pconn_send(c, policy_reply_dunno(c->out, sizeof(c->out)));
		return;
	}
	if (rc == 0) {
		pconn_answer_check(c);
		return;
	}
	/* a callout was queued: wait for it, within policy_timeout_ms */
	c->check_id = id;
	if (pol.timeout_ms == 0) {
		check_timeout(c);
		return;
	}
	c->wait_timer = daemon_timer_add(pol.timeout_ms, 0, check_timeout, c);
	if (!c->wait_timer) {
		check_timeout(c);
		return;
	}
	daemon_mod_fd(c->fd, 0);
}

/* Parses what is buffered; answers at most one request, then waits for the
 * answer to be written before looking at the rest. */
static void pconn_process(struct pconn *c)
{
	size_t used = 0;
	int rc;

	if (c->state != PC_READ || c->inoff == c->inlen)
		return;
	rc = policy_parse(&c->parser, c->in + c->inoff, c->inlen - c->inoff, &used);
	c->inoff += used;
	if (c->inoff == c->inlen)
		c->inoff = c->inlen = 0;
	switch (rc) {
	case POLICY_P_MORE:
		return;
	case POLICY_P_DONE:
		pconn_request(c);
		return;
	case POLICY_E_LINE:
		pol.st[POLICY_ST_LINE_TOO_LONG]++;
		break;
	case POLICY_E_SIZE:
	case POLICY_E_ATTRS:
		pol.st[POLICY_ST_REQ_TOO_BIG]++;
		break;
	default:
		pol.st[POLICY_ST_SYNTAX]++;
		break;
	}
	log_kind(LOG_K_CLIENT, LOG_NOTICE, "policy: closing a client connection: %s",
		 policy_strerror(rc));
	pconn_drop(c);
}

static void pconn_read(struct pconn *c)
{
	ssize_t n;

	/* pconn_process() consumes everything buffered unless a request is
	 * being answered, and then we are not reading: the buffer has room */
	if (c->inoff) {
		memmove(c->in, c->in + c->inoff, c->inlen - c->inoff);
		c->inlen -= c->inoff;
		c->inoff = 0;
	}
	if (c->inlen == sizeof(c->in)) {
		pol.st[POLICY_ST_IO_ERRORS]++;
		pconn_drop(c);
		return;
	}
	n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n == 0) {
		pconn_drop(c);
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		pol.st[POLICY_ST_IO_ERRORS]++;
		pconn_drop(c);
		return;
	}
	c->inlen += (size_t)n;
	c->last_ms = daemon_now_ms();
	pconn_process(c);
}

static void pconn_write(struct pconn *c)
{
	ssize_t n = send(c->fd, c->out + c->outpos, c->outlen - c->outpos, MSG_NOSIGNAL);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		pol.st[POLICY_ST_IO_ERRORS]++;
		pconn_drop(c);
		return;
	}
	c->outpos += (size_t)n;
	c->last_ms = daemon_now_ms();
	if (c->outpos < c->outlen)
		return;
	c->state = PC_READ;
	policy_parser_init(&c->parser);
	daemon_mod_fd(c->fd, EPOLLIN);
	pconn_process(c);
}

static void pconn_io(int fd, uint32_t events, void *arg)
{
	struct pconn *c = arg;

	(void)fd;
	if ((events & EPOLLOUT) && c->state == PC_WRITE) {
		pconn_write(c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state == PC_READ) {
		pconn_read(c);
		return;
	}
	if (events & (EPOLLHUP | EPOLLERR))
		pconn_drop(c);
}

static bool prefix_match(const struct config_cidr *p, const uint8_t *a)
{
	unsigned full = p->plen / 8, rest = p->plen % 8;

	if (memcmp(p->addr, a, full))
		return false;
	return !rest || !((p->addr[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest)));
}

/* A TCP peer is served only from a prefix of policy_allow (an IPv4 peer on
 * an IPv6 listener is matched as IPv4).  A Unix peer is the file mode's. */
static bool peer_allowed(const struct sockaddr_storage *ss, char *ip, size_t iplen)
{
	uint8_t a[16];
	int family = ss->ss_family;

	if (family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (!memcmp(b, mapped, 12)) {
			family = AF_INET;
			memcpy(a, b + 12, 4);
		} else {
			memcpy(a, b, 16);
		}
	} else {
		return true;
	}
	inet_ntop(family, a, ip, (socklen_t)iplen);
	for (unsigned i = 0; i < pol.nallow; i++)
		if (pol.allow[i].family == family && prefix_match(&pol.allow[i], a))
			return true;
	return false;
}

static void policy_accept(int lfd, uint32_t events, void *arg)
{
	unsigned open = 0, free_slot = POLICY_CLIENTS_HARD_MAX;
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	char ip[INET6_ADDRSTRLEN] = "";
	struct pconn *c;
	int fd;

	(void)events;
	(void)arg;
	struct plisten *l = NULL;
	for (unsigned i = 0; i < pol.nlis && !l; i++)
		if (pol.lis[i].fd == lfd)
			l = &pol.lis[i];
	if (!l)
		return;
	fd = listen_accept(&l->ls, (struct sockaddr *)&peer, &pl);
	if (fd < 0)
		return;
	if (!peer_allowed(&peer, ip, sizeof(ip))) {
		pol.st[POLICY_ST_DENIED]++;
		log_kind(LOG_K_CLIENT, LOG_WARNING,
			 "policy: refused connection from [%s]: not in policy_allow", ip);
		close(fd);
		return;
	}
	for (unsigned i = 0; i < POLICY_CLIENTS_HARD_MAX; i++) {
		if (pol.conn[i])
			open++;
		else if (free_slot == POLICY_CLIENTS_HARD_MAX)
			free_slot = i;
	}
	if (open >= pol.max_clients || free_slot == POLICY_CLIENTS_HARD_MAX) {
		pol.st[POLICY_ST_BUSY]++;
		log_kind(LOG_K_CLIENT, LOG_WARNING,
			 "policy: refused a connection: %u clients (policy_max_clients)", open);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->state = PC_READ;
	c->last_ms = daemon_now_ms();
	policy_parser_init(&c->parser);
	if (daemon_add_fd(fd, EPOLLIN, pconn_io, c) < 0) {
		close(fd);
		free(c);
		return;
	}
	pol.conn[free_slot] = c;
	pol.st[POLICY_ST_ACCEPTED]++;
}

static void policy_sweep(void *arg)
{
	uint64_t now = daemon_now_ms();

	(void)arg;
	for (unsigned i = 0; i < POLICY_CLIENTS_HARD_MAX; i++) {
		struct pconn *c = pol.conn[i];
		if (!c || c->state == PC_WAIT)
			continue;
		if (now - c->last_ms >= POLICY_IDLE_MS) {
			pol.st[POLICY_ST_IDLE_CLOSED]++;
			pconn_close(c, i);
		}
	}
}

/* ---------------------------------------------------------------------- */
/* listeners                                                               */

static int listen_unix(struct plisten *l, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "policy_listen %s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN) {
		close(fd);
		snprintf(err, errlen, "policy_listen %s: another process is listening", path);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		goto fail_fd;
	old = umask(0777 & ~pol.sock_mode);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		goto fail_fd;
	}
	umask(old);
	if ((pol.sock_gid >= 0 && chown(path, (uid_t)-1, (gid_t)pol.sock_gid) < 0) ||
	    chmod(path, pol.sock_mode) < 0 || listen(fd, POLICY_BACKLOG) < 0) {
		int e = errno;
		unlink(path);
		errno = e;
		goto fail_fd;
	}
	l->fd = fd;
	l->ls = (struct listen_state){.fd = fd};
	l->unix_sock = true;
	snprintf(l->path, sizeof(l->path), "%s", path);
	return 0;
fail_fd:
	{
		int e = errno;
		close(fd);
		errno = e;
	}
fail:
	snprintf(err, errlen, "policy_listen %s: %s", path, strerror(errno));
	return -errno;
}

static int listen_tcp(struct plisten *l, const char *spec, char *err, size_t errlen)
{
	char host[CONFIG_PATH_MAX], port[16];
	const char *colon;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	size_t hl;
	int fd, one = 1, rc;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (!rb || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - spec - 1);
		memcpy(host, spec + 1, hl);
		host[hl] = '\0';
		colon = rb + 1;
	} else if ((colon = strrchr(spec, ':'))) {
		hl = (size_t)(colon - spec);
		memcpy(host, spec, hl);
		host[hl] = '\0';
	} else {
		host[0] = '\0';
		colon = spec - 1;	/* the whole spec is the port */
	}
	if (!host[0])
		snprintf(host, sizeof(host), "%s", POLICY_DEF_PORT_HOST);
	if (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(port) ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		goto bad;
	snprintf(port, sizeof(port), "%s", colon + 1);
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "policy_listen %s: %s", spec, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, POLICY_BACKLOG) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		snprintf(err, errlen, "policy_listen %s: %s", spec, strerror(e));
		return -e;
	}
	freeaddrinfo(ai);
	l->fd = fd;
	l->ls = (struct listen_state){.fd = fd};
	l->unix_sock = false;
	l->path[0] = '\0';
	return 0;
bad:
	snprintf(err, errlen, "policy_listen %s: expected host:port, [v6]:port, port or "
		 "an absolute path", spec);
	return -EINVAL;
}

static void close_listeners(struct plisten *lis, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		listen_forget(&lis[i].ls);
		daemon_del_fd(lis[i].fd);
		close(lis[i].fd);
		if (lis[i].unix_sock)
			unlink(lis[i].path);
	}
}

/* Opens every listener of spec into lis (all or none). */
static int open_listeners(const char *spec, struct plisten *lis, unsigned *n, char *err,
			  size_t errlen)
{
	char buf[CONFIG_PATH_MAX], *save = NULL, *tok;
	int rc = 0;

	*n = 0;
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (*n == POLICY_LISTEN_MAX) {
			snprintf(err, errlen, "policy_listen: more than %u listeners",
				 POLICY_LISTEN_MAX);
			rc = -E2BIG;
			break;
		}
		rc = tok[0] == '/' ? listen_unix(&lis[*n], tok, err, errlen)
				   : listen_tcp(&lis[*n], tok, err, errlen);
		if (rc < 0)
			break;
		rc = daemon_add_fd(lis[*n].fd, EPOLLIN, policy_accept, NULL);
		if (rc < 0) {
			close(lis[*n].fd);
			snprintf(err, errlen, "policy_listen %s: event loop: %s", tok,
				 strerror(-rc));
			break;
		}
		(*n)++;
	}
	if (rc < 0) {
		close_listeners(lis, *n);
		*n = 0;
	}
	return rc;
}

static void apply_limits(const struct config *cfg)
{
	pol.max_clients = cfg->policy_max_clients ? cfg->policy_max_clients
						  : POLICY_DEF_MAX_CLIENTS;
	if (pol.max_clients > POLICY_CLIENTS_HARD_MAX)
		pol.max_clients = POLICY_CLIENTS_HARD_MAX;
	pol.timeout_ms = cfg->policy_timeout_ms;
	pol.sock_mode = cfg->policy_socket_mode & 0777;
	pol.sock_gid = cfg->policy_socket_gid;
	pol.nallow = cfg->npolicy_allow < CONFIG_MAX_ALLOW ? cfg->npolicy_allow : CONFIG_MAX_ALLOW;
	memcpy(pol.allow, cfg->policy_allow, pol.nallow * sizeof(pol.allow[0]));
}

/* Mode and group of the Unix listeners kept over a reload. */
static void apply_sock_perms(void)
{
	for (unsigned i = 0; i < pol.nlis; i++) {
		if (!pol.lis[i].unix_sock)
			continue;
		if ((pol.sock_gid >= 0 &&
		     chown(pol.lis[i].path, (uid_t)-1, (gid_t)pol.sock_gid) < 0) ||
		    chmod(pol.lis[i].path, pol.sock_mode) < 0)
			log_msg(LOG_ERR, "policy: %s: cannot set mode/group: %s", pol.lis[i].path,
				strerror(errno));
	}
}

int policy_start(const struct config *cfg, char *err, size_t errlen)
{
	int rc;

	if (pol.started) {
		snprintf(err, errlen, "policy service already started");
		return -EALREADY;
	}
	apply_limits(cfg);
	snprintf(pol.listen_spec, sizeof(pol.listen_spec), "%s", cfg->policy_listen);
	pol.started = true;
	if (!cfg->policy_listen[0])
		return 0;	/* off */
	rc = open_listeners(cfg->policy_listen, pol.lis, &pol.nlis, err, errlen);
	if (rc < 0) {
		pol.started = false;
		return rc;
	}
	pol.sweep_timer = daemon_timer_add(POLICY_SWEEP_MS, POLICY_SWEEP_MS, policy_sweep, NULL);
	if (!pol.sweep_timer) {
		close_listeners(pol.lis, pol.nlis);
		pol.nlis = 0;
		pol.started = false;
		snprintf(err, errlen, "policy service: no memory for a timer");
		return -ENOMEM;
	}
	return 0;
}

int policy_reload(const struct config *cfg, char *err, size_t errlen)
{
	struct plisten lis[POLICY_LISTEN_MAX];
	unsigned n = 0;
	int rc;

	if (!pol.started)
		return policy_start(cfg, err, errlen);
	apply_limits(cfg); /* before listening: the new mode and group */
	if (strcmp(cfg->policy_listen, pol.listen_spec) != 0) {
		/* an address the old set already holds cannot be bound twice:
		 * release the old listeners first, restore them on failure */
		close_listeners(pol.lis, pol.nlis);
		rc = cfg->policy_listen[0] ? open_listeners(cfg->policy_listen, lis, &n, err, errlen)
					   : 0;
		if (rc < 0) {
			char e2[128];
			if (open_listeners(pol.listen_spec, pol.lis, &pol.nlis, e2, sizeof(e2)) < 0)
				log_msg(LOG_ERR, "policy: old listeners lost too: %s", e2);
			return rc;
		}
		memcpy(pol.lis, lis, sizeof(lis));
		pol.nlis = n;
		snprintf(pol.listen_spec, sizeof(pol.listen_spec), "%s", cfg->policy_listen);
		if (!pol.sweep_timer)
			pol.sweep_timer = daemon_timer_add(POLICY_SWEEP_MS, POLICY_SWEEP_MS,
							   policy_sweep, NULL);
	} else {
		apply_sock_perms();
	}
	return 0;
}

void policy_stop(void)
{
	if (!pol.started)
		return;
	for (unsigned i = 0; i < POLICY_CLIENTS_HARD_MAX; i++)
		if (pol.conn[i])
			pconn_close(pol.conn[i], i);
	close_listeners(pol.lis, pol.nlis);
	pol.nlis = 0;
	if (pol.sweep_timer)
		daemon_timer_cancel(pol.sweep_timer);
	pol.sweep_timer = 0;
	pol.started = false;
}

void policy_stats_foreach(core_stat_fn fn, void *arg)
{
	for (unsigned i = 0; i < POLICY_ST__COUNT; i++)
		fn("policy", pol_stat_names[i], pol.st[i], pol_stat_help[i], arg);
	fn("policy", "open", policy_conns_open(), "client connections open now", arg);
}

uint64_t policy_stat(enum policy_stat_id id)
{
	return id < POLICY_ST__COUNT ? pol.st[id] : 0;
}

unsigned policy_conns_open(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < POLICY_CLIENTS_HARD_MAX; i++)
		if (pol.conn[i])
			n++;
	return n;
}

uint16_t policy_listen_port(unsigned i)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (i >= pol.nlis || pol.lis[i].unix_sock)
		return 0;
	if (getsockname(pol.lis[i].fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}
