/*
 * ctlproto.c — framing, request validation and error answers of the control
 * socket protocol (see ctlproto.h for the wire format).  Used by rcptgated's
 * main thread (ctl.c) and by rcptctl; pure functions, no allocation.
 *
 * Hand-written because the format is twelve header octets and NUL-separated
 * arguments: a general serialisation library would add a dependency to
 * rcptgated's attack surface without removing any of the checks below.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"
#include "ctlproto.h"

/* How a value is checked. */
enum val_type {
	VT_ADDR,	/* an address addr_normalize() accepts */
	VT_DOMAIN,	/* a domain name: LDH labels, dots, <= RG_DOMAIN_MAX */
	VT_VERDICT,	/* "valid" | "invalid" */
	VT_TTL,		/* seconds, 1..CTLPROTO_TTL_MAX */
	VT_FLAG,	/* "1" */
	VT_PREFIX,	/* IPv4/IPv6 prefix */
};

static const struct {
	const char *name;
	enum val_type type;
} keys[CTLK__MAX] = {
	[CTLK_ADDR] = {"addr", VT_ADDR},
	[CTLK_VERDICT] = {"verdict", VT_VERDICT},
	[CTLK_TTL] = {"ttl", VT_TTL},
	[CTLK_DOMAIN] = {"domain", VT_DOMAIN},
	[CTLK_ALL] = {"all", VT_FLAG},
	[CTLK_PREFIX] = {"prefix", VT_PREFIX},
};

#define K(k) (1u << (k))

/* What each verb takes: required keys, optional keys, and keys of which
 * exactly one must be given. */
static const struct verb_spec {
	unsigned req, opt, oneof;
} verbs[CTLV__MAX] = {
	[CTLV_STATUS] = {0, 0, 0},
	[CTLV_STATS] = {0, 0, 0},
	[CTLV_LOOKUP] = {K(CTLK_ADDR), 0, 0},
	[CTLV_VERIFY] = {K(CTLK_ADDR), 0, 0},
	[CTLV_SET] = {K(CTLK_ADDR) | K(CTLK_VERDICT), K(CTLK_TTL), 0},
	[CTLV_DEL] = {K(CTLK_ADDR), 0, 0},
	[CTLV_FLUSH] = {0, 0, K(CTLK_DOMAIN) | K(CTLK_ALL)},
	[CTLV_DOMAINS] = {0, 0, 0},
	[CTLV_RELOAD] = {0, 0, 0},
	[CTLV_BLOCK] = {K(CTLK_PREFIX), K(CTLK_TTL), 0},
	[CTLV_UNBLOCK] = {K(CTLK_PREFIX), 0, 0},
	[CTLV_BLOCKS] = {0, 0, 0},
	[CTLV_TOP] = {0, 0, 0},
};

static const char *const verb_names[CTLV__MAX] = {
#define CTLPROTO_VERB_NAME(id, val, name, help) [CTLV_##id] = name,
	CTLPROTO_VERBS(CTLPROTO_VERB_NAME)
#undef CTLPROTO_VERB_NAME
};

static const char *const verb_help[CTLV__MAX] = {
#define CTLPROTO_VERB_HELP(id, val, name, help) [CTLV_##id] = help,
	CTLPROTO_VERBS(CTLPROTO_VERB_HELP)
#undef CTLPROTO_VERB_HELP
};

static const char *const status_names[CTLS__MAX] = {
#define CTLPROTO_STATUS_NAME(id, val, name) [CTLS_##id] = name,
	CTLPROTO_STATUSES(CTLPROTO_STATUS_NAME)
#undef CTLPROTO_STATUS_NAME
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

long ctlproto_frame_check(const uint8_t *buf, size_t have, uint8_t kind, uint32_t max,
			  struct ctlproto_hdr *hdr)
{
	/* refuse on the first octet that cannot belong to a good header */
	if (have >= 1 && buf[0] != 'R')
		return CTLP_E_MAGIC;
	if (have >= 2 && buf[1] != 'G')
		return CTLP_E_MAGIC;
	if (have >= 3 && buf[2] != CTLPROTO_VERSION)
		return CTLP_E_VERSION;
	if (have >= 4 && buf[3] != kind)
		return CTLP_E_KIND;
	if (have < CTLPROTO_HDR_LEN)
		return 0;
	hdr->version = buf[2];
	hdr->kind = buf[3];
	hdr->code = get16(buf + 4);
	hdr->flags = get16(buf + 6);
	hdr->len = get32(buf + 8);
	if (hdr->flags != 0)
		return CTLP_E_FLAGS;
	if (hdr->len > max)
		return CTLP_E_TOOBIG;
	if (kind == CTLPROTO_KIND_REQ && (hdr->code == CTLV_NONE || hdr->code >= CTLV__MAX))
		return CTLP_E_VERB;
	if (kind == CTLPROTO_KIND_ANS && hdr->code >= CTLS__MAX)
		return CTLP_E_VERB;
	if (have - CTLPROTO_HDR_LEN < hdr->len)
		return 0;
	return (long)(CTLPROTO_HDR_LEN + hdr->len);
}

void ctlproto_hdr_write(uint8_t *out, uint8_t kind, uint16_t code, uint32_t len)
{
	out[0] = 'R';
	out[1] = 'G';
	out[2] = CTLPROTO_VERSION;
	out[3] = kind;
	put16(out + 4, code);
	put16(out + 6, 0);
	put32(out + 8, len);
}

static bool is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static int check_domain(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > RG_DOMAIN_MAX)
		return CTLP_E_VALUE;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return CTLP_E_VALUE;
			label = 0;
			continue;
		}
		/* SMTPUTF8 domains: octets >= 0x80 pass as in addr.h */
		if (!is_ldh(c) && c < 0x80)
			return CTLP_E_VALUE;
		if (++label > 63)
			return CTLP_E_VALUE;
	}
	return label == 0 && len > 1 ? CTLP_E_VALUE : CTLP_OK;
}

int ctlproto_parse_ttl(const char *s, uint32_t *secs)
{
	uint64_t v = 0, mult = 1;
	size_t i = 0;

	if (s[0] < '0' || s[0] > '9')
		return CTLP_E_VALUE;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > CTLPROTO_TTL_MAX)
			return CTLP_E_VALUE;
	}
	switch (s[i]) {
	case '\0': break;
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	case 'w': mult = 7 * 86400; break;
	default: return CTLP_E_VALUE;
	}
	if (s[i] != '\0' && s[i + 1] != '\0')
		return CTLP_E_VALUE;
	v *= mult;
	if (v == 0 || v > CTLPROTO_TTL_MAX)
		return CTLP_E_VALUE;
	*secs = (uint32_t)v;
	return CTLP_OK;
}

int ctlproto_parse_prefix(const char *s, int *family, uint8_t addr[16], unsigned *plen)
{
	char buf[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned maxlen, len;

	if (alen == 0 || alen >= sizeof(buf))
		return CTLP_E_VALUE;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, buf, addr) == 1) {
		*family = AF_INET6;
		maxlen = 128;
	} else {
		return CTLP_E_VALUE;
	}
	len = maxlen;
	if (slash) {
		const char *p = slash + 1;
		if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '\0'))
			return CTLP_E_VALUE;
		len = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return CTLP_E_VALUE;
			len = len * 10 + (unsigned)(*p - '0');
			if (len > maxlen)
				return CTLP_E_VALUE;
		}
	}
	/* host bits set means the operator meant another prefix: refuse */
	for (unsigned b = len; b < maxlen; b++)
		if (addr[b / 8] & (0x80u >> (b % 8)))
			return CTLP_E_VALUE;
	*plen = len;
	return CTLP_OK;
}

static int check_value(enum ctlproto_key k, const char *v, size_t len, uint32_t *ttl)
{
	char norm[RG_ADDR_MAX];
	uint8_t a[16];
	int fam;
	unsigned plen;

	if (len == 0 || len > CTLPROTO_VAL_MAX)
		return CTLP_E_VALUE;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return CTLP_E_VALUE;
	switch (keys[k].type) {
	case VT_ADDR:
		return addr_normalize(v, len, false, norm, sizeof(norm)) < 0 ? CTLP_E_VALUE
									      : CTLP_OK;
	case VT_DOMAIN:
		return check_domain(v, len);
	case VT_VERDICT:
		return strcmp(v, "valid") == 0 || strcmp(v, "invalid") == 0 ? CTLP_OK
									     : CTLP_E_VALUE;
	case VT_TTL:
		return ctlproto_parse_ttl(v, ttl);
	case VT_FLAG:
		return strcmp(v, "1") == 0 ? CTLP_OK : CTLP_E_VALUE;
	case VT_PREFIX:
		return ctlproto_parse_prefix(v, &fam, a, &plen);
	}
	return CTLP_E_VALUE;
}

static int check_keys(const struct verb_spec *vs, unsigned seen)
{
	if ((seen & vs->req) != vs->req)
		return CTLP_E_MISSING;
	if (vs->oneof && __builtin_popcount(seen & vs->oneof) != 1)
		return CTLP_E_MISSING;
	return CTLP_OK;
}

static int find_key(const char *k, size_t len)
{
	for (int i = 0; i < CTLK__MAX; i++)
		if (strlen(keys[i].name) == len && memcmp(keys[i].name, k, len) == 0)
			return i;
	return -1;
}

int ctlproto_req_decode(const struct ctlproto_hdr *hdr, const uint8_t *payload,
			struct ctlproto_req *req, const char **where)
{
	const char *p = (const char *)payload;
	const char *end = p + hdr->len;
	const struct verb_spec *vs;
	unsigned seen = 0, nargs = 0;
	const char *dummy;
	int rc;

	if (!where)
		where = &dummy;
	*where = NULL;
	memset(req, 0, sizeof(*req));
	if (hdr->version != CTLPROTO_VERSION)
		return CTLP_E_VERSION;
	if (hdr->kind != CTLPROTO_KIND_REQ)
		return CTLP_E_KIND;
	if (hdr->len > CTLPROTO_REQ_MAX)
		return CTLP_E_TOOBIG;
	if (hdr->code == CTLV_NONE || hdr->code >= CTLV__MAX)
		return CTLP_E_VERB;
	req->verb = (enum ctlproto_verb)hdr->code;
	vs = &verbs[req->verb];
	/* count first: too many arguments is the answer whatever they hold */
	for (const char *q = p; q < end; q++)
		if (*q == '\0' && ++nargs > CTLPROTO_ARGS_MAX)
			return CTLP_E_TOOMANY;

	while (p < end) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		const char *eq;
		int k;

		if (!nul)
			return CTLP_E_SYNTAX;
		eq = memchr(p, '=', (size_t)(nul - p));
		if (!eq || eq == p || (size_t)(eq - p) > CTLPROTO_KEY_MAX)
			return CTLP_E_SYNTAX;
		k = find_key(p, (size_t)(eq - p));
		*where = k < 0 ? NULL : keys[k].name;
		if (k < 0 || !((vs->req | vs->opt | vs->oneof) & K(k)))
			return CTLP_E_KEY;
		if (seen & K(k))
			return CTLP_E_DUP;
		rc = check_value((enum ctlproto_key)k, eq + 1, (size_t)(nul - eq - 1), &req->ttl);
		if (rc < 0)
			return rc;
		seen |= K(k);
		req->arg[k] = eq + 1;
		p = nul + 1;
	}
	*where = NULL;
	rc = check_keys(vs, seen);
	if (rc < 0) {
		for (int k = 0; k < CTLK__MAX; k++)
			if (((vs->req | vs->oneof) & K(k)) && !(seen & K(k))) {
				*where = keys[k].name;
				break;
			}
		if (vs->oneof && __builtin_popcount(seen & vs->oneof) > 1)
			*where = NULL;
	}
	return rc;
}

long ctlproto_req_encode(uint8_t *out, size_t outlen, enum ctlproto_verb verb,
			 const struct ctlproto_kv *kv, unsigned n, const char **where)
{
	struct ctlproto_hdr hdr;
	struct ctlproto_req req;
	size_t pos = CTLPROTO_HDR_LEN;
	const char *dummy;
	int rc;

	if (!where)
		where = &dummy;
	*where = NULL;
	if (verb == CTLV_NONE || verb >= CTLV__MAX)
		return CTLP_E_VERB;
	if (n > CTLPROTO_ARGS_MAX)
		return CTLP_E_TOOMANY;
	if (outlen < CTLPROTO_HDR_LEN)
		return CTLP_E_NOSPACE;
	for (unsigned i = 0; i < n; i++) {
		size_t kl, vl;
		if (kv[i].key >= CTLK__MAX || !kv[i].val)
			return CTLP_E_KEY;
		kl = strlen(keys[kv[i].key].name);
		vl = strlen(kv[i].val);
		if (vl > CTLPROTO_VAL_MAX) {
			*where = keys[kv[i].key].name;
			return CTLP_E_VALUE;
		}
		if (pos + kl + 1 + vl + 1 > outlen)
			return CTLP_E_NOSPACE;
		if (pos + kl + 1 + vl + 1 - CTLPROTO_HDR_LEN > CTLPROTO_REQ_MAX)
			return CTLP_E_TOOBIG;
		memcpy(out + pos, keys[kv[i].key].name, kl);
		out[pos + kl] = '=';
		memcpy(out + pos + kl + 1, kv[i].val, vl);
		out[pos + kl + 1 + vl] = '\0';
		pos += kl + 1 + vl + 1;
	}
	ctlproto_hdr_write(out, CTLPROTO_KIND_REQ, (uint16_t)verb,
			   (uint32_t)(pos - CTLPROTO_HDR_LEN));
	/* the same checks the server makes, so bad input never leaves */
	hdr = (struct ctlproto_hdr){CTLPROTO_VERSION, CTLPROTO_KIND_REQ, (uint16_t)verb, 0,
				    (uint32_t)(pos - CTLPROTO_HDR_LEN)};
	rc = ctlproto_req_decode(&hdr, out + CTLPROTO_HDR_LEN, &req, where);
	if (rc < 0)
		return rc;
	return (long)pos;
}

int ctlproto_ans_check(const uint8_t *payload, uint32_t len)
{
	uint32_t i = 0, j = len;

	while (i < len && (payload[i] == ' ' || payload[i] == '\n'))
		i++;
	while (j > i && (payload[j - 1] == ' ' || payload[j - 1] == '\n'))
		j--;
	if (j - i < 2 || payload[i] != '{' || payload[j - 1] != '}')
		return CTLP_E_PAYLOAD;
	if (memchr(payload, '\0', len))
		return CTLP_E_PAYLOAD;
	return CTLP_OK;
}

const char *ctlproto_verb_name(enum ctlproto_verb v)
{
	return v > CTLV_NONE && v < CTLV__MAX ? verb_names[v] : "?";
}

const char *ctlproto_verb_help(enum ctlproto_verb v)
{
	return v > CTLV_NONE && v < CTLV__MAX ? verb_help[v] : "?";
}

enum ctlproto_verb ctlproto_verb_by_name(const char *name)
{
	for (int v = CTLV_NONE + 1; v < CTLV__MAX; v++)
		if (strcmp(verb_names[v], name) == 0)
			return (enum ctlproto_verb)v;
	return CTLV_NONE;
}

const char *ctlproto_key_name(enum ctlproto_key k)
{
	return k < CTLK__MAX ? keys[k].name : "?";
}

const char *ctlproto_status_name(unsigned status)
{
	return status < CTLS__MAX ? status_names[status] : "unknown";
}

const char *ctlproto_strerror(int err)
{
	switch (err) {
	case CTLP_OK: return "ok";
	case CTLP_E_MAGIC: return "not a control protocol frame";
	case CTLP_E_VERSION: return "protocol version mismatch";
	case CTLP_E_KIND: return "wrong frame kind";
	case CTLP_E_FLAGS: return "reserved header flags set";
	case CTLP_E_TOOBIG: return "frame over the size limit";
	case CTLP_E_VERB: return "unknown verb or status";
	case CTLP_E_SYNTAX: return "argument is not key=value";
	case CTLP_E_KEY: return "argument not accepted by this verb";
	case CTLP_E_DUP: return "argument given twice";
	case CTLP_E_MISSING: return "required argument missing";
	case CTLP_E_VALUE: return "bad argument value";
	case CTLP_E_TOOMANY: return "too many arguments";
	case CTLP_E_NOSPACE: return "buffer too small";
	case CTLP_E_PAYLOAD: return "answer is not a JSON object";
	}
	return "unknown error";
}

int ctlproto_json_str(char *out, size_t outlen, size_t *pos, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t p = *pos;

#define PUT(c)                                  \
	do {                                    \
		if (p + 1 >= outlen)            \
			return CTLP_E_NOSPACE;  \
		out[p++] = (c);                 \
	} while (0)
	PUT('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			PUT('\\');
			PUT((char)c);
		} else if (c == '\n' || c == '\r' || c == '\t') {
			PUT('\\');
			PUT(c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		} else if (c < 0x20 || c == 0x7f) {
			PUT('\\');
			PUT('u');
			PUT('0');
			PUT('0');
			PUT(hex[c >> 4]);
			PUT(hex[c & 15]);
		} else {
			PUT((char)c);
		}
	}
	PUT('"');
#undef PUT
	out[p] = '\0';
	*pos = p;
	return CTLP_OK;
}

long ctlproto_err_answer(uint8_t *out, size_t outlen, enum ctlproto_status st,
			 const char *msg)
{
	char *j = (char *)out + CTLPROTO_HDR_LEN;
	size_t jl, pos;
	int n;

	if (outlen < CTLPROTO_HDR_LEN + 64)
		return CTLP_E_NOSPACE;
	jl = outlen - CTLPROTO_HDR_LEN;
	n = snprintf(j, jl, "{\"status\":\"%s\",\"error\":", ctlproto_status_name(st));
	if (n < 0 || (size_t)n >= jl)
		return CTLP_E_NOSPACE;
	pos = (size_t)n;
	if (ctlproto_json_str(j, jl, &pos, msg, strlen(msg)) < 0 || pos + 2 > jl)
		return CTLP_E_NOSPACE;
	j[pos++] = '}';
	ctlproto_hdr_write(out, CTLPROTO_KIND_ANS, (uint16_t)st, (uint32_t)pos);
	return (long)(CTLPROTO_HDR_LEN + pos);
}
