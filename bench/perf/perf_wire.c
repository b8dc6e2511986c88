/* Hello, reject and control message helpers (pure code, unit-tested). */
#include "perf_wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(struct perf_hello) <= PERF_CONNECT_PDATA_MAX, "hello must fit a connect request");
_Static_assert(sizeof(struct perf_reject) <= 148, "reject private data is at most 148 bytes");
_Static_assert(sizeof(struct perf_msg) <= 256, "control slots are 256 bytes");

void perf_hello_from_opts(const struct perf_opts *o, struct perf_hello *h)
{
	memset(h, 0, sizeof(*h));
	h->hdr.magic = PERF_MAGIC;
	h->hdr.version = PERF_PROTO_VERSION;
	h->hdr.kind = PERF_PD_HELLO;
	h->flags = (o->lat ? PERF_HELLO_LAT : 0) | (o->all ? PERF_HELLO_ALL : 0) | (o->verify ? PERF_HELLO_VERIFY : 0) |
		   (o->copy ? PERF_HELLO_COPY : 0) | (o->rcache ? PERF_HELLO_RCACHE : 0) |
		   (o->fresh_reg ? PERF_HELLO_FRESH_REG : 0);
	snprintf(h->test, sizeof(h->test), "%s", o->test);
	h->size = o->all ? 0 : o->size;
	h->iters = o->duration ? 0 : o->iters;
	h->duration = (uint32_t)o->duration;
	h->qps = (uint32_t)o->qps;
}

int perf_hello_decode(const void *buf, size_t len, struct perf_hello *h, char *err, size_t errlen)
{
	struct perf_pdata_hdr hdr;

	if (!buf || len < sizeof(hdr)) {
		snprintf(err, errlen, "peer sent no zc_perf parameters (is it zc_perf?)");
		return -EPROTO;
	}
	memcpy(&hdr, buf, sizeof(hdr));
	if (hdr.magic != PERF_MAGIC) {
		snprintf(err, errlen, "peer is not zc_perf (bad magic 0x%08x)", hdr.magic);
		return -EPROTO;
	}
	if (hdr.version != PERF_PROTO_VERSION) {
		snprintf(err, errlen, "peer speaks zc_perf protocol %u, this is %d", hdr.version, PERF_PROTO_VERSION);
		return -EPROTO;
	}
	if (hdr.kind != PERF_PD_HELLO || len < sizeof(*h)) {
		snprintf(err, errlen, "peer sent private data of kind %u, expected the test parameters", hdr.kind);
		return -EPROTO;
	}
	memcpy(h, buf, sizeof(*h));
	h->test[sizeof(h->test) - 1] = '\0';
	return 0;
}

static int differ(char *err, size_t errlen, const char *what, const char *mine, const char *peer,
		  const char *peer_name)
{
	snprintf(err, errlen, "%s differs: %s here, %s on the %s; run both sides with the same options", what,
		 mine, peer, peer_name);
	return -EINVAL;
}

static int differ_u64(char *err, size_t errlen, const char *what, uint64_t mine, uint64_t peer,
		      const char *peer_name)
{
	char a[32], b[32];

	snprintf(a, sizeof(a), "%llu", (unsigned long long)mine);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)peer);
	return differ(err, errlen, what, a, b, peer_name);
}

static const char *onoff(uint32_t flags, uint32_t bit)
{
	return (flags & bit) ? "on" : "off";
}

int perf_hello_compare(const struct perf_hello *mine, const struct perf_hello *peer, const char *peer_name,
		       char *err, size_t errlen)
{
	static const struct {
		uint32_t bit;
		const char *what;
	} flags[] = {
		{PERF_HELLO_LAT, "--lat"},
		{PERF_HELLO_ALL, "-a"},
		{PERF_HELLO_VERIFY, "--verify"},
		{PERF_HELLO_COPY, "--copy"},
		{PERF_HELLO_FRESH_REG, "--no-rcache-reuse"},
		{PERF_HELLO_RCACHE, "--rcache"},
	};
	size_t i;

	if (strcmp(mine->test, peer->test) != 0)
		return differ(err, errlen, "--test", mine->test, peer->test, peer_name);
	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if ((mine->flags ^ peer->flags) & flags[i].bit)
			return differ(err, errlen, flags[i].what, onoff(mine->flags, flags[i].bit),
				      onoff(peer->flags, flags[i].bit), peer_name);
	if (mine->size != peer->size)
		return differ_u64(err, errlen, "-s", mine->size, peer->size, peer_name);
	if (mine->duration != peer->duration)
		return differ_u64(err, errlen, "-D", mine->duration, peer->duration, peer_name);
	if (mine->iters != peer->iters)
		return differ_u64(err, errlen, "-n", mine->iters, peer->iters, peer_name);
	if (mine->qps != peer->qps)
		return differ_u64(err, errlen, "-q", mine->qps, peer->qps, peer_name);
	return 0;
}

void perf_reject_make(struct perf_reject *r, const char *text)
{
	memset(r, 0, sizeof(*r));
	r->hdr.magic = PERF_MAGIC;
	r->hdr.version = PERF_PROTO_VERSION;
	r->hdr.kind = PERF_PD_REJECT;
	snprintf(r->text, sizeof(r->text), "%s", text);
}

const char *perf_reject_text(const void *buf, size_t len, char *out, size_t outlen)
{
	struct perf_reject r;

	if (!buf || len < sizeof(r.hdr) || outlen == 0)
		return NULL;
	memset(&r, 0, sizeof(r));
	memcpy(&r, buf, len < sizeof(r) ? len : sizeof(r));
	if (r.hdr.magic != PERF_MAGIC || r.hdr.kind != PERF_PD_REJECT)
		return NULL;
	r.text[sizeof(r.text) - 1] = '\0';
	snprintf(out, outlen, "%s", r.text);
	return out;
}

const char *perf_msg_type_name(int type)
{
	switch (type) {
	case PERF_MSG_READY: return "READY";
	case PERF_MSG_DONE: return "DONE";
	case PERF_MSG_ACK: return "ACK";
	case PERF_MSG_ABORT: return "ABORT";
	default: return "unknown";
	}
}
