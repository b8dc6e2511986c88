/*
 * Raw connections over real rxe (include/zcrdma.h, RAW CONNECTIONS): a raw
 * client on rxe0 and a raw listener on rxe1, two contexts driven by one
 * thread, everything seen through zc_wait_events().
 *
 *   handshake  private data both ways (request 56 B, reply 196 B) byte for
 *              byte; a reject's 148 B seen by the client (-ECONNREFUSED); an
 *              over-long reject and a non-raw accept refuse; READ depths
 *              and RNR retries as the queue pairs run them
 *   sendrecv   SEND/RECV 0 B .. 1 MiB both ways at odd offsets, inline and
 *              not, registered and through the cache, byte-verified
 *   rma        RDMA READ/WRITE against an export's (addr, rkey), verified;
 *              the peer's SEND_WITH_INVALIDATE voids it (-ESTALE, flag and
 *              key in the receive's completion), a later READ fails with a
 *              remote access error, revoke still frees it
 *   hostile    misuse is -EINVAL/-EAGAIN/-ENOTCONN, never a crash; a bad
 *              rkey completes -ZC_EREMOTEACCESS; a receive too small for a
 *              SEND completes with an error (rxe flushes it: -ECONNRESET)
 *   close      the peer's disconnect is PEER_CLOSED and flushes posted
 *              receives with -ECONNRESET; zc_close() flushes its own with
 *              -ECONNABORTED
 *   mixed      a raw and a zcrdma connection on the same contexts at once
 *   chain      ZC_RAW_MORE: a WRITE and the SEND after it (1 B .. 1 MiB + 1,
 *              odd offsets) go out with one doorbell (send_posts + 1,
 *              send_wrs + 2), the data byte-verified at the peer when the
 *              SEND arrives; a READ + WRITE + SEND chain; a held WRITE
 *              posted by progress alone; 20 held (16 at most wait); room
 *              taken by held operations (-EAGAIN); a chain whose WRITE has
 *              a bad key (both tokens fail, the connection with them); a
 *              held WRITE of an aborted connection (-ECONNABORTED). Every
 *              token completes exactly once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zcrdma.h"
#include "rxe_env.h"

#define MiB (1024 * 1024)
#define MAXQ 1024

static struct rxe_env env;
static struct zc_ctx *ca, *cb; /* client (rxe0), server (rxe1) */
static struct zc_listener *lraw;
static uint16_t port;
static struct zc_event q[MAXQ];
static int nq;

/* Both contexts once; level-triggered events are asked for directly. */
static void pump(void)
{
	struct zc_ctx *cs[2] = {ca, cb};
	int i;

	for (i = 0; i < 2; i++) {
		struct zc_event ev[64];
		int n = zc_wait_events(cs[i], ev, 64, 1), k;

		CHECK_RC(n, "zc_wait_events");
		for (k = 0; k < n; k++) {
			if (ev[k].type == ZC_EV_ACCEPT || ev[k].type == ZC_EV_READABLE)
				continue;
			RXE_ASSERT(nq < MAXQ, "event queue overflow");
			q[nq++] = ev[k];
		}
	}
}

static bool match(const struct zc_event *e, int type, struct zc_conn *c, uint64_t token)
{
	if (e->type != type)
		return false;
	return type == ZC_EV_COMPLETION ? e->token == token : e->conn == c;
}

/* The event of that type for c (completions: with that token). */
static struct zc_event take(int type, struct zc_conn *c, uint64_t token)
{
	double deadline = rxe_now() + 30;
	struct zc_event e;
	int i;

	for (;;) {
		for (i = 0; i < nq; i++) {
			if (!match(&q[i], type, c, token))
				continue;
			e = q[i];
			memmove(&q[i], &q[i + 1], (size_t)(nq - i - 1) * sizeof(q[0]));
			nq--;
			return e;
		}
		RXE_ASSERT(rxe_now() < deadline, "no event of type %d (token %llu) within 30 s", type,
			   (unsigned long long)token);
		pump();
	}
}

/* Events still queued for c are dropped with it: a later connection may
 * get the same address. */
static void forget(struct zc_conn *c)
{
	int i, k = 0;

	for (i = 0; i < nq; i++)
		if (q[i].conn != c || q[i].type == ZC_EV_COMPLETION)
			q[k++] = q[i];
	nq = k;
}

static void drop(struct zc_conn **c)
{
	forget(*c);
	zc_abort(c);
}

static struct zc_event comp(uint64_t token, int op, int status)
{
	struct zc_event e = take(ZC_EV_COMPLETION, NULL, token);

	RXE_ASSERT(e.op == op, "token %llu: op %d, expected %d", (unsigned long long)token, e.op, op);
	RXE_ASSERT(e.status == status, "token %llu: status %d (%s), expected %d (%s)", (unsigned long long)token,
		   e.status, zc_strerror(e.status), status, zc_strerror(status));
	return e;
}

static struct zc_conn_req *get_req(void)
{
	double deadline = rxe_now() + 30;
	struct zc_conn_req *r;
	int rc;

	while ((rc = zc_req_get(lraw, &r, 0)) == -EAGAIN) {
		RXE_ASSERT(rxe_now() < deadline, "no connection request within 30 s");
		pump();
	}
	CHECK_RC(rc, "zc_req_get");
	return r;
}

static struct zc_conn_opts raw_opts(void)
{
	struct zc_conn_opts o;

	zc_conn_opts_init(&o);
	o.raw = 1;
	return o;
}

static void start(struct zc_conn_opts *co, struct zc_conn **cl)
{
	CHECK_RC(zc_connect_start(ca, env.addr_b, port, co, cl), "zc_connect_start");
}

/* A connected pair; nrecv receives of rlen bytes at rbuf are posted on the
 * server side before its reply goes out (tokens 900..). */
static void pair(struct zc_conn_opts *co, struct zc_conn_opts *so, struct zc_conn **cl, struct zc_conn **sv,
		 int nrecv, uint8_t *rbuf, size_t rlen)
{
	struct zc_conn_req *r;
	int i;

	start(co, cl);
	r = get_req();
	CHECK_RC(zc_req_accept(&r, so, sv), "zc_req_accept");
	RXE_ASSERT(r == NULL, "zc_req_accept left the request");
	for (i = 0; i < nrecv; i++)
		CHECK_RC(zc_raw_recv(*sv, rbuf + (size_t)i * rlen, rlen, NULL, 900 + (uint64_t)i),
			 "zc_raw_recv before the reply");
	CHECK_RC(take(ZC_EV_CONNECTED, *cl, 0).status, "client CONNECTED");
	CHECK_RC(take(ZC_EV_CONNECTED, *sv, 0).status, "server CONNECTED");
}

static void check_priv(const void *data, size_t len, size_t want, uint32_t seed, const char *what)
{
	long bad;

	RXE_ASSERT(len >= want, "%s: %zu bytes of private data, expected at least %zu", what, len, want);
	bad = rxe_check(data, want, seed);
	RXE_ASSERT(bad < 0, "%s: private data differs at byte %ld", what, bad);
	printf("%s: %zu bytes of private data (%zu sent) verified\n", what, len, want);
}

static void test_handshake(void)
{
	uint8_t req[ZC_PRIV_REQ_MAX], rep[ZC_PRIV_REP_MAX], rej[ZC_PRIV_REJ_MAX + 1], rbuf[64];
	struct zc_conn_opts co = raw_opts(), so = raw_opts();
	struct zc_conn *cl, *sv;
	struct zc_conn_req *r;
	struct zc_conn_info ci, si, ri;
	struct zc_stats st;
	const void *pd;
	size_t n;

	rxe_fill(req, sizeof(req), 1);
	rxe_fill(rep, sizeof(rep), 2);
	rxe_fill(rej, sizeof(rej), 3);
	co.private_data = req;
	co.private_data_len = sizeof(req) + 1;
	RXE_ASSERT(zc_connect_start(ca, env.addr_b, port, &co, &cl) == -EINVAL, "57 bytes of REQ private data taken");
	printf("57 bytes: %s\n", zc_last_error());
	co.private_data_len = sizeof(req);
	co.initiator_depth = 4;
	co.responder_resources = 2;
	co.rnr_retry = 5;
	so.private_data = rep;
	so.private_data_len = sizeof(rep);
	so.rnr_retry = 3;

	start(&co, &cl);
	RXE_ASSERT(zc_raw_send(cl, "x", 1, NULL, 1, 0, 0) == -ENOTCONN, "a send before CONNECTED was taken");
	RXE_ASSERT(zc_conn_peer_private_data(cl, &pd, &n) == -ENOENT, "private data before the reply");
	r = get_req();
	CHECK_RC(zc_req_private_data(r, &pd, &n), "zc_req_private_data");
	check_priv(pd, n, sizeof(req), 1, "request");
	CHECK_RC(zc_req_query(r, &ri), "zc_req_query");
	RXE_ASSERT(ri.raw && ri.initiator_depth == 4 && ri.responder_resources == 2,
		   "the request offers initiator depth %u, responder resources %u", ri.initiator_depth,
		   ri.responder_resources);
	RXE_ASSERT(ri.peer.ss_family == (env.family == 6 ? AF_INET6 : AF_INET), "request's peer address family");
	CHECK_RC(zc_req_accept(&r, &so, &sv), "zc_req_accept");
	rep[0] ^= 0xff; /* the reply must carry what was given at the call */
	CHECK_RC(zc_raw_recv(sv, rbuf, sizeof(rbuf), NULL, 100), "zc_raw_recv before the reply");
	CHECK_RC(take(ZC_EV_CONNECTED, cl, 0).status, "client CONNECTED");
	CHECK_RC(take(ZC_EV_CONNECTED, sv, 0).status, "server CONNECTED");
	rep[0] ^= 0xff;
	CHECK_RC(zc_conn_peer_private_data(cl, &pd, &n), "zc_conn_peer_private_data (client)");
	check_priv(pd, n, sizeof(rep), 2, "reply");
	CHECK_RC(zc_conn_peer_private_data(sv, &pd, &n), "zc_conn_peer_private_data (server)");
	check_priv(pd, n, sizeof(req), 1, "server's copy of the request");

	/* raw queue pairs take no receive slots: the pools were never made */
	CHECK_RC(zc_ctx_stats(cb, &st), "zc_ctx_stats");
	RXE_ASSERT(st.rx_slots == 0 && st.rx_slots_promised == 0 && st.tx_slots == 0,
		   "a raw connection made receive or send slots: %llu / %llu / %llu", (unsigned long long)st.rx_slots,
		   (unsigned long long)st.rx_slots_promised, (unsigned long long)st.tx_slots);
	CHECK_RC(zc_conn_query(cl, &ci), "zc_conn_query client");
	CHECK_RC(zc_conn_query(sv, &si), "zc_conn_query server");
	printf("client: initiator %u responder %u rnr_retry %u depths %u/%u; server: initiator %u responder %u "
	       "rnr_retry %u depths %u/%u\n",
	       ci.initiator_depth, ci.responder_resources, ci.rnr_retry, ci.send_depth, ci.recv_depth,
	       si.initiator_depth, si.responder_resources, si.rnr_retry, si.send_depth, si.recv_depth);
	RXE_ASSERT(ci.raw && si.raw, "raw not reported");
	/* The server's READs are bounded by what the client serves, and the
	 * other way round. */
	RXE_ASSERT(si.initiator_depth == 2 && si.responder_resources == 4, "server READ depths");
	RXE_ASSERT(ci.initiator_depth == 4 && ci.responder_resources == 2, "client READ depths");
	/* rdma_cm's RNR retry count is the one the peer's QP uses */
	RXE_ASSERT(si.rnr_retry == 5 && ci.rnr_retry == 3, "RNR retries as the CM messages asked");
	RXE_ASSERT(ci.send_depth == 128 && ci.recv_depth == 128, "default raw depths");

	/* the pair works: the receive posted before the reply gets a SEND */
	CHECK_RC(zc_raw_send(cl, "hello", 5, NULL, 101, 0, 0), "zc_raw_send");
	RXE_ASSERT(comp(100, ZC_OP_RAW_RECV, 0).len == 5 && !memcmp(rbuf, "hello", 5), "hello");
	comp(101, ZC_OP_RAW_SEND, 0);
	forget(cl);
	zc_close(&cl);
	forget(sv);
	zc_close(&sv);

	/* a reject with the most private data a reject carries */
	co = raw_opts();
	start(&co, &cl);
	r = get_req();
	CHECK_RC(zc_req_reject(&r, rej, ZC_PRIV_REJ_MAX), "zc_req_reject");
	RXE_ASSERT(!r, "zc_req_reject left the request");
	RXE_ASSERT(take(ZC_EV_CONNECTED, cl, 0).status == -ECONNREFUSED, "rejected connect's status");
	CHECK_RC(zc_conn_peer_private_data(cl, &pd, &n), "zc_conn_peer_private_data after a reject");
	check_priv(pd, n, ZC_PRIV_REJ_MAX, 3, "reject");
	drop(&cl);

	/* too much private data for a reject, and a non-raw accept: refused all the same */
	start(&co, &cl);
	r = get_req();
	RXE_ASSERT(zc_req_reject(&r, rej, ZC_PRIV_REJ_MAX + 1) == -EINVAL && !r, "149 bytes of REJ private data");
	RXE_ASSERT(take(ZC_EV_CONNECTED, cl, 0).status == -ECONNREFUSED, "over-long reject");
	drop(&cl);
	start(&co, &cl);
	r = get_req();
	zc_conn_opts_init(&so);
	RXE_ASSERT(zc_req_accept(&r, &so, &sv) == -EINVAL && !r, "a zcrdma accept of a raw request");
	RXE_ASSERT(take(ZC_EV_CONNECTED, cl, 0).status == -ECONNREFUSED, "non-raw accept");
	drop(&cl);
	/* a request taken and never answered: zc_ctx_free() rejects and frees it */
	start(&co, &cl);
	r = get_req();
}

static void one_send(struct zc_conn *from, struct zc_conn *to, size_t len, size_t off, struct zc_mr *mr,
		     uint8_t *src, uint8_t *dst, uint64_t token)
{
	struct zc_event e;
	long bad;

	rxe_fill(src + off, len, (uint32_t)token);
	memset(dst, 0xee, len + 2 * off + 16);
	CHECK_RC(zc_raw_recv(to, dst + off + 1, len + 7, NULL, token), "zc_raw_recv");
	CHECK_RC(zc_raw_send(from, src + off, len, mr, token + 1, 0, 0), "zc_raw_send");
	e = comp(token, ZC_OP_RAW_RECV, 0);
	RXE_ASSERT(e.len == len && e.flags == 0, "%zu bytes: received %zu, flags %d", len, e.len, e.flags);
	bad = rxe_check(dst + off + 1, len, (uint32_t)token);
	RXE_ASSERT(bad < 0, "%zu bytes at offset %zu: byte %ld differs", len, off, bad);
	RXE_ASSERT(dst[off] == 0xee && dst[off + 1 + len] == 0xee, "%zu bytes: written outside the message", len);
	RXE_ASSERT(comp(token + 1, ZC_OP_RAW_SEND, 0).len == len, "send completion length");
}

static void test_sendrecv(void)
{
	static const size_t sizes[] = {0, 1, 2, 63, 64, 100, 1000, 4095, 4096, 4097, 65539, MiB - 1, MiB};
	struct zc_conn_opts co = raw_opts(), so = raw_opts();
	struct zc_conn *cl, *sv;
	struct zc_mr *mr;
	uint8_t *src = malloc(2 * MiB), *dst = malloc(2 * MiB);
	uint64_t token = 1000;
	unsigned i;

	pair(&co, &so, &cl, &sv, 0, NULL, 0);
	CHECK_RC(zc_mr_reg(ca, src, 2 * MiB, 0, &mr), "zc_mr_reg");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t off = 1 + 2 * i; /* odd offsets */

		one_send(cl, sv, sizes[i], off, NULL, src, dst, token);
		token += 2;
		one_send(sv, cl, sizes[i], off + 2, NULL, src, dst, token);
		token += 2;
		one_send(cl, sv, sizes[i], off, mr, src, dst, token); /* a region of the caller's */
		token += 2;
	}
	printf("sendrecv: %u sizes, 0 B .. 1 MiB, both ways, byte-verified\n", i);
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	forget(cl);
	zc_close(&cl);
	forget(sv);
	zc_close(&sv);
	free(src);
	free(dst);
}

struct key {
	uint64_t addr;
	uint32_t rkey, len;
};

static void test_rma(void)
{
	struct zc_conn_opts co = raw_opts(), so = raw_opts();
	struct zc_conn *cl, *sv;
	struct zc_mr *mr;
	struct zc_export *exp;
	struct zc_desc desc;
	struct key k, got;
	size_t region = 4 * MiB, off = MiB + 3, len = MiB + 5;
	uint8_t *mem = malloc(region), *expect = malloc(region), *buf = malloc(len + 16);
	uint64_t a;
	uint32_t rk;
	struct zc_event e;
	long bad;

	pair(&co, &so, &cl, &sv, 0, NULL, 0);
	rxe_fill(mem, region, 7);
	memcpy(expect, mem, region);
	CHECK_RC(zc_mr_reg(cb, mem, region, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &mr), "zc_mr_reg");
	CHECK_RC(zc_export(sv, mr, off, len, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &exp, &desc),
		 "zc_export on a raw connection");
	CHECK_RC(zc_export_key(exp, &k.addr, &k.rkey), "zc_export_key");
	RXE_ASSERT(k.addr == (uintptr_t)mem + off, "zc_export_key's address");
	k.len = (uint32_t)len;
	/* the key goes over the wire as a protocol would carry it */
	CHECK_RC(zc_raw_recv(cl, &got, sizeof(got), NULL, 2000), "zc_raw_recv key");
	CHECK_RC(zc_raw_send(sv, &k, sizeof(k), NULL, 2001, 0, 0), "zc_raw_send key");
	comp(2000, ZC_OP_RAW_RECV, 0);
	comp(2001, ZC_OP_RAW_SEND, 0);

	CHECK_RC(zc_raw_read(cl, buf + 1, got.len, NULL, got.addr, got.rkey, 2002, 0), "zc_raw_read");
	RXE_ASSERT(comp(2002, ZC_OP_RAW_READ, 0).len == got.len, "read length");
	bad = memcmp(buf + 1, expect + off, len) ? 1 : -1;
	RXE_ASSERT(bad < 0, "RDMA READ bytes differ");
	rxe_fill(buf + 3, 4097, 8);
	CHECK_RC(zc_raw_write(cl, buf + 3, 4097, NULL, got.addr + 100, got.rkey, 2003, 0), "zc_raw_write");
	comp(2003, ZC_OP_RAW_WRITE, 0);
	rxe_fill(expect + off + 100, 4097, 8);
	RXE_ASSERT(!memcmp(mem, expect, region), "the exported region differs from what was written");
	printf("rma: READ %zu B and WRITE 4097 B against (0x%llx, 0x%x) verified\n", len,
	       (unsigned long long)got.addr, got.rkey);

	/* SEND_WITH_INVALIDATE of the export's key */
	CHECK_RC(zc_raw_recv(sv, buf, 64, NULL, 2004), "zc_raw_recv");
	CHECK_RC(zc_raw_send(cl, "done", 4, NULL, 2005, ZC_RAW_INVALIDATE, got.rkey), "zc_raw_send invalidate");
	e = comp(2004, ZC_OP_RAW_RECV, 0);
	RXE_ASSERT(e.len == 4 && (e.flags & ZC_COMP_INVALIDATED) && e.invalidated_rkey == k.rkey,
		   "invalidating receive: len %zu flags %d key 0x%x", e.len, e.flags, e.invalidated_rkey);
	comp(2005, ZC_OP_RAW_SEND, 0);
	RXE_ASSERT(zc_export_key(exp, &a, &rk) == -ESTALE, "an invalidated export still gives its key");
	printf("invalidated: %s\n", zc_last_error());
	CHECK_RC(zc_raw_read(cl, buf, 64, NULL, got.addr, got.rkey, 2006, 0), "zc_raw_read after invalidation");
	comp(2006, ZC_OP_RAW_READ, -ZC_EREMOTEACCESS);
	RXE_ASSERT(take(ZC_EV_ERROR, cl, 0).status == -ZC_EREMOTEACCESS, "client ERROR after the access error");
	CHECK_RC(zc_export_revoke(&exp), "zc_export_revoke of an invalidated export");
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	drop(&cl);
	drop(&sv);
	free(mem);
	free(expect);
	free(buf);
}

static void test_hostile(void)
{
	struct zc_conn_opts co = raw_opts(), so = raw_opts();
	struct zc_conn *cl, *sv;
	struct zc_mr *mr;
	struct zc_conn_req *r;
	uint8_t buf[4096], small[16];
	struct zc_event e;
	int i, rc;

	so.raw_recv_depth = 4;
	so.raw_send_depth = 2;
	pair(&co, &so, &cl, &sv, 4, buf, 64);
	/* the receive queue is full with the 4 posted */
	RXE_ASSERT(zc_raw_recv(sv, buf + 1024, 64, NULL, 3000) == -EAGAIN, "a 5th receive in a queue of 4");
	printf("full receive queue: %s\n", zc_last_error());
	/* zcrdma's calls on a raw connection, raw calls misused */
	RXE_ASSERT(zc_send(cl, buf, 10, ZC_DONTWAIT) == -EINVAL, "zc_send on raw");
	RXE_ASSERT(zc_msg_send(cl, buf, 10, ZC_DONTWAIT) == -EINVAL, "zc_msg_send on raw");
	RXE_ASSERT(zc_recv(cl, buf, 10, ZC_DONTWAIT) == -EINVAL, "zc_recv on raw");
	RXE_ASSERT(zc_msg_recv(cl, buf, 10, ZC_DONTWAIT) == -EINVAL, "zc_msg_recv on raw");
	RXE_ASSERT(zc_send_zc(cl, buf, 10, NULL, 1) == -EINVAL, "zc_send_zc on raw");
	RXE_ASSERT(zc_recv_zc(cl, buf, 10, NULL, 1) == -EINVAL, "zc_recv_zc on raw");
	RXE_ASSERT(zc_raw_recv(cl, buf, 0, NULL, 1) == -EINVAL, "zero-length receive");
	RXE_ASSERT(zc_raw_recv(cl, NULL, 10, NULL, 1) == -EINVAL, "NULL receive");
	RXE_ASSERT(zc_raw_send(cl, buf, 10, NULL, 1, 0x10, 0) == -EINVAL, "unknown flags");
	RXE_ASSERT(zc_raw_read(cl, NULL, 10, NULL, 0, 0, 1, 0) == -EINVAL, "NULL read");
	RXE_ASSERT(zc_raw_write(cl, buf, 0, NULL, 0, 0, 1, 0) == -EINVAL, "empty write");
	CHECK_RC(zc_mr_reg(ca, buf, 1024, 0, &mr), "zc_mr_reg");
	RXE_ASSERT(zc_raw_send(cl, buf + 1000, 100, mr, 1, 0, 0) == -EINVAL, "a send outside its region");
	RXE_ASSERT(zc_raw_recv(cl, buf + 1000, 100, mr, 1) == -EINVAL, "a receive outside its region");
	RXE_ASSERT(zc_raw_read(cl, buf + 1000, 100, mr, 0, 0, 1, 0) == -EINVAL, "a read outside its region");
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	RXE_ASSERT(zc_accept(lraw, &cl, 0) == -EINVAL, "zc_accept on a raw listener");
	RXE_ASSERT(zc_raw_send(NULL, buf, 1, NULL, 1, 0, 0) == -EINVAL, "NULL connection");
	RXE_ASSERT(zc_req_accept(NULL, NULL, NULL) == -EINVAL && zc_req_get(NULL, &r, 0) == -EINVAL, "NULL request");

	/* a full send queue is -EAGAIN until a completion frees room */
	for (i = 0; i < 3; i++)
		CHECK_RC(zc_raw_recv(cl, buf + 2048 + 64 * i, 64, NULL, 3110 + (uint64_t)i), "zc_raw_recv");
	for (i = 0; i < 3 && (rc = zc_raw_send(sv, "abc", 3, NULL, 3100 + (uint64_t)i, 0, 0)) == 0; i++)
		;
	RXE_ASSERT(i == 2 && rc == -EAGAIN, "a send queue of 2 took %d sends (rc %d)", i, rc);
	take(ZC_EV_WRITABLE, sv, 0); /* once room is back */
	comp(3100, ZC_OP_RAW_SEND, 0);
	comp(3101, ZC_OP_RAW_SEND, 0);
	CHECK_RC(zc_raw_send(sv, "abc", 3, NULL, 3102, 0, 0), "a send once room is back");
	for (i = 0; i < 3; i++)
		RXE_ASSERT(comp(3110 + (uint64_t)i, ZC_OP_RAW_RECV, 0).len == 3, "abc");
	comp(3102, ZC_OP_RAW_SEND, 0);

	/* a SEND longer than the receive buffer: that receive fails, no crash */
	CHECK_RC(zc_raw_send(cl, buf, 100, NULL, 3200, 0, 0), "zc_raw_send 100 B into 64 B");
	e = take(ZC_EV_COMPLETION, NULL, 900);
	RXE_ASSERT(e.op == ZC_OP_RAW_RECV && e.status < 0 && e.len == 0, "a 100 B SEND into 64 B: status %d", e.status);
	printf("100 B into 64 B: the receive: %s; ", zc_strerror(e.status));
	printf("the send: %s\n", zc_strerror(take(ZC_EV_COMPLETION, NULL, 3200).status));
	for (i = 1; i < 4; i++) /* the rest flush with the connection's error */
		RXE_ASSERT(take(ZC_EV_COMPLETION, NULL, 900 + (uint64_t)i).status < 0, "flushed receive %d", i);
	drop(&cl);
	drop(&sv);

	/* queues the completion queue cannot take: -ENOSPC, the client refused */
	start(&co, &cl);
	r = get_req();
	so.raw_send_depth = so.raw_recv_depth = 16384;
	RXE_ASSERT(zc_req_accept(&r, &so, &sv) == -ENOSPC && !r, "a raw QP beyond the CQ's room was accepted");
	printf("too deep: %s\n", zc_last_error());
	RXE_ASSERT(take(ZC_EV_CONNECTED, cl, 0).status == -ECONNREFUSED, "refused for lack of CQ room");
	drop(&cl);
	so.raw_send_depth = 2;
	so.raw_recv_depth = 4;

	/* a bad rkey: an error completion, not a crash */
	pair(&co, &so, &cl, &sv, 0, NULL, 0);
	CHECK_RC(zc_raw_read(cl, small, sizeof(small), NULL, 0x1000, 0xdeadbeef, 3300, 0), "zc_raw_read bad key");
	comp(3300, ZC_OP_RAW_READ, -ZC_EREMOTEACCESS);
	RXE_ASSERT(take(ZC_EV_ERROR, cl, 0).status == -ZC_EREMOTEACCESS, "ERROR after a bad key");
	RXE_ASSERT(zc_raw_read(cl, small, sizeof(small), NULL, 0x1000, 1, 3301, 0) == -ZC_EREMOTEACCESS,
		   "a failed connection takes more reads");
	drop(&cl);
	drop(&sv);
	printf("hostile: misuse refused, bad key and short buffer are error completions\n");
}

static void test_close(void)
{
	struct zc_conn_opts co = raw_opts(), so = raw_opts();
	struct zc_conn *cl, *sv;
	uint8_t sbuf[4 * 64], cbuf[2 * 64];
	struct zc_event e;
	int i;

	pair(&co, &so, &cl, &sv, 4, sbuf, 64);
	for (i = 0; i < 2; i++)
		CHECK_RC(zc_raw_recv(cl, cbuf + 64 * i, 64, NULL, 4000 + (uint64_t)i), "zc_raw_recv");
	zc_conn_set_data(cl, cbuf);
	forget(cl);
	CHECK_RC(zc_close(&cl), "zc_close of a raw connection");
	for (i = 0; i < 2; i++) {
		e = comp(4000 + (uint64_t)i, ZC_OP_RAW_RECV, -ECONNABORTED);
		RXE_ASSERT(e.conn == NULL && e.data == cbuf, "a closed connection's completion");
	}
	take(ZC_EV_PEER_CLOSED, sv, 0);
	for (i = 0; i < 4; i++)
		comp(900 + (uint64_t)i, ZC_OP_RAW_RECV, -ECONNRESET);
	for (i = 0; i < nq; i++)
		RXE_ASSERT(!(q[i].type == ZC_EV_ERROR && q[i].conn == sv), "an orderly disconnect reported as ERROR");
	RXE_ASSERT(zc_raw_recv(sv, sbuf, 64, NULL, 4010) == -ECONNRESET, "a receive after the peer left");
	forget(sv);
	CHECK_RC(zc_close(&sv), "zc_close after the peer left");

	/* an accepted connection closed before its reply: the client is refused */
	start(&co, &cl);
	{
		struct zc_conn_req *r = get_req();

		CHECK_RC(zc_req_accept(&r, &so, &sv), "zc_req_accept");
		CHECK_RC(zc_raw_recv(sv, sbuf, 64, NULL, 4020), "zc_raw_recv");
		drop(&sv);
	}
	comp(4020, ZC_OP_RAW_RECV, -ECONNABORTED);
	RXE_ASSERT(take(ZC_EV_CONNECTED, cl, 0).status == -ECONNREFUSED, "a connect whose accept was abandoned");
	drop(&cl);
	printf("close: receives flushed with -ECONNABORTED here and -ECONNRESET at the peer (PEER_CLOSED)\n");
}

static void test_mixed(void)
{
	struct zc_conn_opts co = raw_opts(), so = raw_opts();
	struct zc_conn *cl, *sv, *zcl, *zsv;
	struct zc_listener *lz;
	uint8_t rbuf[8][1024], msg[1024], got[1024];
	uint16_t zport = rxe_port(12);
	uint64_t rt[8]; /* the token of the receive posted in each buffer */
	int i, sent = 0, recvd = 0;
	ssize_t n;

	CHECK_RC(zc_listen(cb, zport, NULL, &lz), "zc_listen (zcrdma)");
	pair(&co, &so, &cl, &sv, 8, rbuf[0], sizeof(rbuf[0]));
	CHECK_RC(zc_connect_start(ca, env.addr_b, zport, NULL, &zcl), "zc_connect_start (zcrdma)");
	CHECK_RC(take(ZC_EV_CONNECTED, zcl, 0).status, "zcrdma CONNECTED");
	while (zc_accept(lz, &zsv, 0) == -EAGAIN)
		pump();
	for (i = 0; i < 8; i++)
		rt[i] = 900 + (uint64_t)i;
	/* 200 rounds: a raw SEND and a zcrdma message each, interleaved */
	for (i = 0; i < 200; i++) {
		uint64_t t = 5000 + (uint64_t)i;
		struct zc_event e;

		rxe_fill(msg, sizeof(msg), (uint32_t)t);
		CHECK_RC(zc_raw_send(cl, msg, sizeof(msg), NULL, t + 100000, 0, 0), "zc_raw_send");
		CHECK_RC(zc_msg_send(zcl, msg, sizeof(msg) - (size_t)i, 0), "zc_msg_send");
		sent++;
		e = comp(rt[i % 8], ZC_OP_RAW_RECV, 0); /* receives fill in posting order */
		RXE_ASSERT(e.len == sizeof(msg) && rxe_check(rbuf[i % 8], sizeof(msg), (uint32_t)t) < 0,
			   "raw message %d", i);
		rt[i % 8] = 10000 + (uint64_t)i;
		CHECK_RC(zc_raw_recv(sv, rbuf[i % 8], sizeof(rbuf[0]), NULL, rt[i % 8]), "zc_raw_recv again");
		comp(t + 100000, ZC_OP_RAW_SEND, 0);
		while ((n = zc_msg_recv(zsv, got, sizeof(got), ZC_DONTWAIT)) == -EAGAIN)
			pump();
		RXE_ASSERT(n == (ssize_t)sizeof(msg) - i && !memcmp(got, msg, (size_t)n), "zcrdma message %d", i);
		recvd++;
	}
	printf("mixed: %d raw SENDs and %d zcrdma messages interleaved on the same contexts, verified\n", sent, recvd);
	forget(zcl);
	zc_close(&zcl);
	forget(zsv);
	zc_close(&zsv);
	forget(cl);
	zc_close(&cl);
	forget(sv);
	zc_close(&sv);
	zc_listener_free(&lz);
}

/* The client's doorbells and work requests since the last call. */
static void posts_since(struct zc_stats *last, uint64_t want_posts, uint64_t want_wrs, const char *what)
{
	struct zc_stats st;

	CHECK_RC(zc_ctx_stats(ca, &st), "zc_ctx_stats");
	RXE_ASSERT(st.send_posts - last->send_posts == want_posts && st.send_wrs - last->send_wrs == want_wrs,
		   "%s: %llu doorbells for %llu work requests, expected %llu for %llu", what,
		   (unsigned long long)(st.send_posts - last->send_posts),
		   (unsigned long long)(st.send_wrs - last->send_wrs), (unsigned long long)want_posts,
		   (unsigned long long)want_wrs);
	*last = st;
}

/* No completion of a token in [lo, hi) is left after each was taken once. */
static void no_second_completion(uint64_t lo, uint64_t hi)
{
	double until = rxe_now() + 0.2;
	int i;

	while (rxe_now() < until)
		pump();
	for (i = 0; i < nq; i++)
		RXE_ASSERT(!(q[i].type == ZC_EV_COMPLETION && q[i].token >= lo && q[i].token < hi),
			   "token %llu completed twice", (unsigned long long)q[i].token);
}

static void test_chain(void)
{
	static const size_t sizes[] = {1, 2, 63, 512, 4095, 4096, 4097, 65539, MiB - 1, MiB + 1};
	struct zc_conn_opts co = raw_opts(), so = raw_opts();
	struct zc_conn *cl, *sv;
	struct zc_mr *mr;
	struct zc_export *exp;
	struct zc_desc desc;
	struct zc_stats st;
	struct zc_event e;
	size_t region = 2 * MiB + 64;
	uint8_t *mem = malloc(region), *src = malloc(2 * MiB + 64), *rd = malloc(MiB + 64), rbuf[8][64];
	uint8_t msg[64] = "response";
	uint64_t base, cqes0, t = 6000;
	uint32_t rkey;
	unsigned i, nr = 0; /* receives consumed: the next lands in 900 + nr % 8 */
	int k, rc;

	co.keepalive_ms = 0; /* no probe may ring a doorbell between the counts */
	pair(&co, &so, &cl, &sv, 8, rbuf[0], sizeof(rbuf[0]));
	CHECK_RC(zc_mr_reg(cb, mem, region, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &mr), "zc_mr_reg");
	CHECK_RC(zc_export(sv, mr, 0, region, ZC_ACCESS_REMOTE_READ | ZC_ACCESS_REMOTE_WRITE, &exp, &desc),
		 "zc_export");
	CHECK_RC(zc_export_key(exp, &base, &rkey), "zc_export_key");
	CHECK_RC(zc_ctx_stats(ca, &st), "zc_ctx_stats");
	cqes0 = st.completions;

	/* WRITE + SEND, one doorbell; the data is in place when the SEND lands */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++, t += 2) {
		size_t len = sizes[i], soff = 1 + 2 * i, doff = 3 + 4 * i;
		uint64_t rt = 900 + nr++ % 8;

		memset(mem, 0xee, region);
		rxe_fill(src + soff, len, (uint32_t)t);
		CHECK_RC(zc_raw_write(cl, src + soff, len, NULL, base + doff, rkey, t, ZC_RAW_MORE), "held WRITE");
		CHECK_RC(zc_raw_send(cl, msg, sizeof(msg), NULL, t + 1, 0, 0), "the SEND after it");
		posts_since(&st, 1, 2, "WRITE + SEND");
		e = comp(rt, ZC_OP_RAW_RECV, 0);
		RXE_ASSERT(e.len == sizeof(msg) && !memcmp(rbuf[rt - 900], msg, sizeof(msg)), "the SEND's bytes");
		/* RC ordering: the WRITE's bytes are all there when its SEND is */
		RXE_ASSERT(rxe_check(mem + doff, len, (uint32_t)t) < 0, "%zu bytes at offset %zu differ", len, doff);
		RXE_ASSERT(mem[doff - 1] == 0xee && mem[doff + len] == 0xee, "%zu bytes: written outside", len);
		CHECK_RC(zc_raw_recv(sv, rbuf[rt - 900], sizeof(rbuf[0]), NULL, rt), "zc_raw_recv again");
		RXE_ASSERT(comp(t, ZC_OP_RAW_WRITE, 0).len == len, "WRITE completion length");
		RXE_ASSERT(comp(t + 1, ZC_OP_RAW_SEND, 0).len == sizeof(msg), "SEND completion length");
	}
	posts_since(&st, 0, 0, "reaping");
	/* the WRITEs went unsignaled: one device completion per chain */
	RXE_ASSERT(st.completions - cqes0 == i, "%llu device completions for %u chains",
		   (unsigned long long)(st.completions - cqes0), i);
	printf("chain: %u WRITE + SEND pairs, 1 B .. 1 MiB + 1 at odd offsets, one doorbell each, verified\n", i);

	/* READ + WRITE + SEND */
	rxe_fill(mem + 5, MiB, 77);
	rxe_fill(src + 7, 4099, 78);
	CHECK_RC(zc_raw_read(cl, rd + 1, MiB, NULL, base + 5, rkey, t, ZC_RAW_MORE), "held READ");
	CHECK_RC(zc_raw_write(cl, src + 7, 4099, NULL, base + MiB + 9, rkey, t + 1, ZC_RAW_MORE), "held WRITE");
	CHECK_RC(zc_raw_send(cl, msg, 5, NULL, t + 2, 0, 0), "SEND");
	posts_since(&st, 1, 3, "READ + WRITE + SEND");
	comp(900 + nr % 8, ZC_OP_RAW_RECV, 0);
	RXE_ASSERT(comp(t, ZC_OP_RAW_READ, 0).len == MiB && rxe_check(rd + 1, MiB, 77) < 0, "READ bytes");
	RXE_ASSERT(rxe_check(mem + MiB + 9, 4099, 78) < 0, "WRITE bytes");
	comp(t + 1, ZC_OP_RAW_WRITE, 0);
	comp(t + 2, ZC_OP_RAW_SEND, 0);
	CHECK_RC(zc_raw_recv(sv, rbuf[nr % 8], sizeof(rbuf[0]), NULL, 900 + nr % 8), "zc_raw_recv again");
	nr++;
	t += 3;

	/* held alone: the next progress posts it */
	rxe_fill(src, 333, 79);
	CHECK_RC(zc_raw_write(cl, src, 333, NULL, base + 1, rkey, t, ZC_RAW_MORE), "held WRITE");
	posts_since(&st, 0, 0, "a held WRITE before progress");
	comp(t, ZC_OP_RAW_WRITE, 0);
	posts_since(&st, 1, 1, "a held WRITE after progress");
	RXE_ASSERT(rxe_check(mem + 1, 333, 79) < 0, "WRITE posted by progress");
	t++;

	/* 20 held: the 17th rings for the first 16, the SEND for the rest */
	for (k = 0; k < 20; k++) {
		rxe_fill(src + 100 * k, 99, (uint32_t)(t + k));
		CHECK_RC(zc_raw_write(cl, src + 100 * k, 99, NULL, base + 100 * k, rkey, t + k, ZC_RAW_MORE),
			 "held WRITE");
	}
	posts_since(&st, 1, 16, "17 held");
	CHECK_RC(zc_raw_send(cl, msg, 1, NULL, t + 20, 0, 0), "SEND");
	posts_since(&st, 1, 5, "4 held + SEND");
	comp(900 + nr % 8, ZC_OP_RAW_RECV, 0);
	for (k = 0; k <= 20; k++)
		comp(t + k, k < 20 ? ZC_OP_RAW_WRITE : ZC_OP_RAW_SEND, 0);
	for (k = 0; k < 20; k++)
		RXE_ASSERT(rxe_check(mem + 100 * k, 99, (uint32_t)(t + k)) < 0, "held WRITE %d's bytes", k);
	CHECK_RC(zc_raw_recv(sv, rbuf[nr % 8], sizeof(rbuf[0]), NULL, 900 + nr % 8), "zc_raw_recv again");
	no_second_completion(6000, t + 21);
	printf("chain: READ + WRITE + SEND one doorbell; progress posts what is held; 20 held take 2 doorbells\n");
	CHECK_RC(zc_export_revoke(&exp), "zc_export_revoke");
	forget(cl);
	CHECK_RC(zc_close(&cl), "zc_close");
	take(ZC_EV_PEER_CLOSED, sv, 0);
	for (k = 0; k < 8; k++)
		comp(900 + (uint64_t)k, ZC_OP_RAW_RECV, -ECONNRESET);
	drop(&sv);
	t += 21;

	/* held operations take their room: a queue of 4 takes 4, the 5th is -EAGAIN */
	co.raw_send_depth = 4;
	pair(&co, &so, &cl, &sv, 1, rbuf[0], sizeof(rbuf[0]));
	CHECK_RC(zc_export(sv, mr, 0, region, ZC_ACCESS_REMOTE_WRITE, &exp, &desc), "zc_export");
	CHECK_RC(zc_export_key(exp, &base, &rkey), "zc_export_key");
	CHECK_RC(zc_ctx_stats(ca, &st), "zc_ctx_stats");
	for (k = 0; k < 4; k++)
		CHECK_RC(zc_raw_write(cl, src, 64, NULL, base, rkey, t + k, ZC_RAW_MORE), "held WRITE of 4");
	rc = zc_raw_send(cl, msg, 1, NULL, t + 4, ZC_RAW_MORE, 0);
	RXE_ASSERT(rc == -EAGAIN, "a 5th operation in a queue of 4: %d", rc);
	posts_since(&st, 0, 0, "4 held, a 5th refused");
	for (k = 0; k < 4; k++)
		comp(t + k, ZC_OP_RAW_WRITE, 0);
	posts_since(&st, 1, 4, "4 held posted by progress");
	t += 5;

	/* a chain whose WRITE has a bad key: both fail, and the connection */
	CHECK_RC(zc_raw_write(cl, src, 64, NULL, base, rkey ^ 0x5a5a00, t, ZC_RAW_MORE), "WRITE with a bad key");
	CHECK_RC(zc_raw_send(cl, msg, 8, NULL, t + 1, 0, 0), "the SEND after it");
	posts_since(&st, 1, 2, "bad-key chain");
	comp(t, ZC_OP_RAW_WRITE, -ZC_EREMOTEACCESS);
	e = take(ZC_EV_COMPLETION, NULL, t + 1);
	RXE_ASSERT(e.op == ZC_OP_RAW_SEND && e.status < 0, "the SEND after a failed WRITE: status %d", e.status);
	printf("chain: bad key: WRITE %s, SEND %s\n", zc_strerror(-ZC_EREMOTEACCESS), zc_strerror(e.status));
	RXE_ASSERT(take(ZC_EV_ERROR, cl, 0).status == -ZC_EREMOTEACCESS, "ERROR after the bad key");
	RXE_ASSERT(zc_raw_send(cl, msg, 1, NULL, t + 2, 0, 0) == -ZC_EREMOTEACCESS, "a failed connection sends");
	e = take(ZC_EV_COMPLETION, NULL, 900);
	RXE_ASSERT(e.status < 0, "the peer's receive after the failed chain: status %d", e.status);
	no_second_completion(t, t + 3);
	CHECK_RC(zc_export_revoke(&exp), "zc_export_revoke");
	drop(&cl);
	drop(&sv);
	t += 3;

	/* a held WRITE on a connection aborted before any progress */
	pair(&co, &so, &cl, &sv, 0, NULL, 0);
	CHECK_RC(zc_export(sv, mr, 0, region, ZC_ACCESS_REMOTE_WRITE, &exp, &desc), "zc_export");
	CHECK_RC(zc_export_key(exp, &base, &rkey), "zc_export_key");
	CHECK_RC(zc_raw_write(cl, src, 64, NULL, base, rkey, t, ZC_RAW_MORE), "held WRITE");
	zc_conn_set_data(cl, src);
	drop(&cl);
	e = comp(t, ZC_OP_RAW_WRITE, -ECONNABORTED);
	RXE_ASSERT(e.conn == NULL && e.data == src, "an aborted connection's held WRITE");
	no_second_completion(t, t + 1);
	CHECK_RC(zc_export_revoke(&exp), "zc_export_revoke");
	drop(&sv);
	printf("chain: held operations take room (-EAGAIN); a bad key fails both tokens; abort completes held\n");
	CHECK_RC(zc_mr_dereg(&mr), "zc_mr_dereg");
	free(mem);
	free(src);
	free(rd);
}

static const struct {
	const char *name;
	void (*run)(void);
} modes[] = {{"handshake", test_handshake}, {"sendrecv", test_sendrecv}, {"rma", test_rma},
	     {"hostile", test_hostile},     {"close", test_close},       {"mixed", test_mixed},
	     {"chain", test_chain}};

int main(int argc, char **argv)
{
	struct zc_conn_opts lo;
	unsigned i;

	for (i = 0; argc == 2 && i < sizeof(modes) / sizeof(modes[0]) && strcmp(argv[1], modes[i].name); i++)
		;
	if (argc != 2 || i == sizeof(modes) / sizeof(modes[0]))
		RXE_FAIL("usage: rxe_raw handshake|sendrecv|rma|hostile|close|mixed|chain");
	rxe_env_require(&env);
	port = rxe_port(11);
	CHECK_RC(zc_ctx_new(env.addr_a, NULL, &ca), "zc_ctx_new client");
	CHECK_RC(zc_ctx_new(env.addr_b, NULL, &cb), "zc_ctx_new server");
	zc_conn_opts_init(&lo);
	lo.raw = 1;
	CHECK_RC(zc_listen(cb, port, &lo, &lraw), "zc_listen raw");
	modes[i].run();
	CHECK_RC(zc_listener_free(&lraw), "zc_listener_free");
	CHECK_RC(zc_ctx_free(&ca), "zc_ctx_free client");
	CHECK_RC(zc_ctx_free(&cb), "zc_ctx_free server");
	printf("rxe_raw %s: ok\n", modes[i].name);
	return 0;
}
