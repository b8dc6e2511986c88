/* rdma_cm connection setup with bounded waits. */
#include "perf_cm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "perf_time.h"
#include "perf_wire.h"

#define SLICE_MS 200

int perf_cm_open(struct perf_cm *cm)
{
	int fl;

	memset(cm, 0, sizeof(*cm));
	cm->ch = rdma_create_event_channel();
	if (!cm->ch)
		return -errno;
	/* Non-blocking so a poll() race can never turn into an endless read. */
	fl = fcntl(cm->ch->fd, F_GETFL);
	if (fl < 0 || fcntl(cm->ch->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void drop_event(struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	int req = ev->event == RDMA_CM_EVENT_CONNECT_REQUEST;

	/* A request nobody took: refuse it, then its id is ours to destroy. */
	if (req) {
		struct perf_reject r;

		perf_reject_make(&r, "zc_perf server is busy with another client");
		rdma_reject(id, &r, sizeof(r));
	}
	rdma_ack_cm_event(ev);
	if (req)
		rdma_destroy_id(id);
}

void perf_cm_close(struct perf_cm *cm)
{
	int i;

	for (i = 0; i < cm->npending; i++)
		drop_event(cm->pending[i]);
	cm->npending = 0;
	if (cm->listen_id)
		rdma_destroy_id(cm->listen_id);
	cm->listen_id = NULL;
	if (cm->ch)
		rdma_destroy_event_channel(cm->ch);
	cm->ch = NULL;
}

const char *perf_cm_addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		port = ntohs(s->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
	}
	snprintf(buf, len, "%s:%d", host, port);
	return buf;
}

static int lookup(const char *host, int port, int passive, struct sockaddr_storage *out, char *err, size_t errlen)
{
	struct addrinfo hints, *res;
	char service[8];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host ? host : "(any)", gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

int perf_cm_listen(struct perf_cm *cm, const char *bind, int port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	char a[80];
	int rc;

	memset(&ss, 0, sizeof(ss));
	if (bind) {
		rc = lookup(bind, port, 1, &ss, err, errlen);
		if (rc)
			return rc;
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(INADDR_ANY);
		s->sin_port = htons((uint16_t)port);
	}
	if (rdma_create_id(cm->ch, &cm->listen_id, NULL, RDMA_PS_TCP)) {
		rc = -errno;
		snprintf(err, errlen, "rdma_create_id: %s", strerror(errno));
		return rc;
	}
	if (rdma_bind_addr(cm->listen_id, (struct sockaddr *)&ss) || rdma_listen(cm->listen_id, 64)) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s%s", perf_cm_addr_str((struct sockaddr *)&ss, a, sizeof(a)),
			 strerror(errno), errno == EADDRINUSE ? " (another server on this port? try -p)" : "");
		return rc;
	}
	return 0;
}

int perf_cm_set_peer(struct perf_cm *cm, const char *bind, const char *server, int port, char *err, size_t errlen)
{
	int rc = lookup(server, port, 0, &cm->dst, err, errlen);

	if (rc)
		return rc;
	cm->have_src = 0;
	if (bind) {
		rc = lookup(bind, 0, 1, &cm->src, err, errlen);
		if (rc)
			return rc;
		cm->have_src = 1;
	}
	return 0;
}

static int pending_take(struct perf_cm *cm, struct rdma_cm_id *id, enum rdma_cm_event_type type,
			struct rdma_cm_event **ev)
{
	int i;

	for (i = 0; i < cm->npending; i++) {
		struct rdma_cm_event *e = cm->pending[i];

		if (e->event == type && (!id || e->id == id)) {
			memmove(&cm->pending[i], &cm->pending[i + 1], (size_t)(cm->npending - i - 1) * sizeof(*ev));
			cm->npending--;
			*ev = e;
			return 1;
		}
	}
	return 0;
}

/* Fetches one event, waiting at most timeout_ms (< 0: until stopped). 0, -ETIMEDOUT or other < 0. */
static int fetch(struct perf_cm *cm, int timeout_ms, struct rdma_cm_event **ev)
{
	uint64_t deadline = timeout_ms < 0 ? 0 : perf_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		struct pollfd pfd = {.fd = cm->ch->fd, .events = POLLIN};
		int rc, slice = SLICE_MS;

		if (rdma_get_cm_event(cm->ch, ev) == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		rc = perf_stopped();
		if (rc)
			return rc;
		if (deadline) {
			uint64_t now = perf_now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			if ((deadline - now) / 1000000ull < (uint64_t)slice)
				slice = (int)((deadline - now) / 1000000ull) + 1;
		}
		if (poll(&pfd, 1, slice) < 0 && errno != EINTR)
			return -errno;
	}
}

/* Why an event on the id we wait for ends the wait. */
static int event_error(const struct rdma_cm_event *ev, enum rdma_cm_event_type want, char *err, size_t errlen)
{
	char why[PERF_REJECT_TEXT];

	switch (ev->event) {
	case RDMA_CM_EVENT_REJECTED:
		if (perf_reject_text(ev->param.conn.private_data, ev->param.conn.private_data_len, why, sizeof(why))) {
			snprintf(err, errlen, "server refused: %s", why);
			return -ECONNREFUSED;
		}
		snprintf(err, errlen, "connection rejected (status %d): is a zc_perf server listening there?",
			 ev->status);
		return -EHOSTUNREACH;
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
		snprintf(err, errlen, "%s (status %d)", rdma_event_str(ev->event), ev->status);
		return -EHOSTUNREACH;
	case RDMA_CM_EVENT_DISCONNECTED:
		snprintf(err, errlen, "peer disconnected");
		return -ECONNRESET;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		snprintf(err, errlen, "RDMA device removed");
		return -ENODEV;
	default:
		snprintf(err, errlen, "expected %s, got %s (status %d)", rdma_event_str(want), rdma_event_str(ev->event),
			 ev->status);
		return -EPROTO;
	}
}

int perf_cm_wait(struct perf_cm *cm, struct rdma_cm_id *id, enum rdma_cm_event_type type, int timeout_ms,
		 struct rdma_cm_event **ev, char *err, size_t errlen)
{
	if (pending_take(cm, id, type, ev))
		return 0;
	for (;;) {
		struct rdma_cm_event *e;
		int rc = fetch(cm, timeout_ms, &e);

		if (rc) {
			snprintf(err, errlen, "%s while waiting for %s", rc == -ETIMEDOUT ? "timed out" : strerror(-rc),
				 rdma_event_str(type));
			return rc;
		}
		if (e->event == type && (!id || e->id == id)) {
			*ev = e;
			return 0;
		}
		if (id && e->id == id) {
			rc = event_error(e, type, err, errlen);
			rdma_ack_cm_event(e);
			return rc;
		}
		switch (e->event) {
		case RDMA_CM_EVENT_CONNECT_REQUEST:
		case RDMA_CM_EVENT_ESTABLISHED:
			if (cm->npending < PERF_CM_PENDING) {
				cm->pending[cm->npending++] = e;
				continue;
			}
			drop_event(e);
			continue;
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			rc = event_error(e, type, err, errlen);
			rdma_ack_cm_event(e);
			return rc;
		default:
			/* TIMEWAIT_EXIT, ADDR_CHANGE and the like concern nobody here. */
			rdma_ack_cm_event(e);
			continue;
		}
	}
}

int perf_cm_check(struct perf_cm *cm, char *err, size_t errlen)
{
	struct rdma_cm_event *e;

	while (rdma_get_cm_event(cm->ch, &e) == 0) {
		int rc;

		switch (e->event) {
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			rc = event_error(e, RDMA_CM_EVENT_ESTABLISHED, err, errlen);
			rdma_ack_cm_event(e);
			return rc;
		case RDMA_CM_EVENT_CONNECT_REQUEST:
			drop_event(e); /* another client while we run: refuse it */
			break;
		default:
			rdma_ack_cm_event(e);
			break;
		}
	}
	return 0;
}

static int resolve_once(struct perf_cm *cm, struct rdma_cm_id *id, char *err, size_t errlen)
{
	struct rdma_cm_event *ev;
	int rc;

	if (rdma_resolve_addr(id, cm->have_src ? (struct sockaddr *)&cm->src : NULL, (struct sockaddr *)&cm->dst,
			      PERF_CM_RESOLVE_MS)) {
		rc = -errno;
		snprintf(err, errlen, "rdma_resolve_addr: %s", strerror(errno));
		return rc;
	}
	rc = perf_cm_wait(cm, id, RDMA_CM_EVENT_ADDR_RESOLVED, PERF_CM_STEP_MS, &ev, err, errlen);
	if (rc)
		return rc;
	rdma_ack_cm_event(ev);
	if (rdma_resolve_route(id, PERF_CM_RESOLVE_MS)) {
		rc = -errno;
		snprintf(err, errlen, "rdma_resolve_route: %s", strerror(errno));
		return rc;
	}
	rc = perf_cm_wait(cm, id, RDMA_CM_EVENT_ROUTE_RESOLVED, PERF_CM_STEP_MS, &ev, err, errlen);
	if (rc)
		return rc;
	rdma_ack_cm_event(ev);
	return 0;
}

int perf_cm_client_id(struct perf_cm *cm, struct rdma_cm_id **idp, char *err, size_t errlen)
{
	int attempt, rc = -EHOSTUNREACH;

	/* Resolution is retried: under emulation the first ARP can be slow. */
	for (attempt = 0; attempt < 3; attempt++) {
		struct rdma_cm_id *id;

		if (rdma_create_id(cm->ch, &id, NULL, RDMA_PS_TCP)) {
			rc = -errno;
			snprintf(err, errlen, "rdma_create_id: %s", strerror(errno));
			return rc;
		}
		rc = resolve_once(cm, id, err, errlen);
		if (rc == 0) {
			*idp = id;
			return 0;
		}
		rdma_destroy_id(id);
		if (rc != -EHOSTUNREACH && rc != -ETIMEDOUT)
			break;
		if (perf_stopped())
			break;
	}
	return rc;
}

int perf_cm_connect(struct perf_cm *cm, struct rdma_cm_id *id, struct rdma_conn_param *param, void *peer_pd,
		    size_t *peer_len, char *err, size_t errlen)
{
	struct rdma_cm_event *ev;
	size_t n;
	int rc;

	if (rdma_connect(id, param)) {
		rc = -errno;
		snprintf(err, errlen, "rdma_connect: %s", strerror(errno));
		return rc;
	}
	rc = perf_cm_wait(cm, id, RDMA_CM_EVENT_ESTABLISHED, PERF_CM_STEP_MS, &ev, err, errlen);
	if (rc)
		return rc;
	n = ev->param.conn.private_data_len;
	if (!ev->param.conn.private_data)
		n = 0;
	if (peer_pd && peer_len) {
		if (n > *peer_len)
			n = *peer_len;
		memcpy(peer_pd, ev->param.conn.private_data, n);
		*peer_len = n;
	}
	rdma_ack_cm_event(ev);
	return 0;
}

int perf_cm_accept(struct perf_cm *cm, struct rdma_cm_id *id, struct rdma_conn_param *param, char *err,
		   size_t errlen)
{
	struct rdma_cm_event *ev;
	int rc;

	if (rdma_accept(id, param)) {
		rc = -errno;
		snprintf(err, errlen, "rdma_accept: %s", strerror(errno));
		return rc;
	}
	rc = perf_cm_wait(cm, id, RDMA_CM_EVENT_ESTABLISHED, PERF_CM_STEP_MS, &ev, err, errlen);
	if (rc)
		return rc;
	rdma_ack_cm_event(ev);
	return 0;
}
