/*
 * rxe smoke test: raw librdmacm + libibverbs across rxe0 -> rxe1, no zcrdma.
 * Proves the guest's topology carries RDMA: connect, a byte-verified SEND, a
 * byte-verified RDMA WRITE at an odd offset, and an orderly disconnect that
 * both sides see.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <rdma/rdma_cma.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rxe_env.h"

#define SEND_LEN 4097
#define WRITE_LEN (1024 * 1024 + 3)
#define WRITE_OFF 5
#define TIMEOUT_MS 20000
#define RESOLVE_MS 2000

struct remote_buf {
	uint64_t addr;
	uint32_t rkey;
	uint32_t len;
};

static struct rxe_env env;
static uint16_t port;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int listening;

static struct rdma_cm_event *expect_event(struct rdma_event_channel *ch, enum rdma_cm_event_type type)
{
	struct pollfd pfd = {.fd = ch->fd, .events = POLLIN};
	struct rdma_cm_event *ev;

	if (poll(&pfd, 1, TIMEOUT_MS) != 1)
		RXE_FAIL("timed out waiting for %s", rdma_event_str(type));
	if (rdma_get_cm_event(ch, &ev))
		RXE_FAIL("rdma_get_cm_event: %s", strerror(errno));
	if (ev->event != type)
		RXE_FAIL("expected %s, got %s (status %d)", rdma_event_str(type), rdma_event_str(ev->event), ev->status);
	return ev;
}

static void wait_wc(struct ibv_cq *cq, enum ibv_wc_opcode opcode, uint32_t *byte_len)
{
	struct ibv_wc wc;
	double deadline = rxe_now() + 30;
	int n;

	while ((n = ibv_poll_cq(cq, 1, &wc)) == 0) {
		if (rxe_now() > deadline)
			RXE_FAIL("no completion within 30 s");
	}
	if (n < 0)
		RXE_FAIL("ibv_poll_cq failed");
	if (wc.status != IBV_WC_SUCCESS)
		RXE_FAIL("completion error: %s", ibv_wc_status_str(wc.status));
	if (wc.opcode != opcode)
		RXE_FAIL("expected opcode %d, got %d", opcode, wc.opcode);
	if (byte_len)
		*byte_len = wc.byte_len;
}

static struct ibv_qp_init_attr qp_attr(struct ibv_cq *cq)
{
	struct ibv_qp_init_attr a = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = {.max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 1, .max_recv_sge = 1},
		.sq_sig_all = 1,
	};
	return a;
}

static void post_recv(struct ibv_qp *qp, struct ibv_mr *mr, void *buf, uint32_t len)
{
	struct ibv_sge sge = {.addr = (uintptr_t)buf, .length = len, .lkey = mr->lkey};
	struct ibv_recv_wr wr = {.sg_list = &sge, .num_sge = 1}, *bad;

	if (ibv_post_recv(qp, &wr, &bad))
		RXE_FAIL("ibv_post_recv: %s", strerror(errno));
}

static void *server(void *arg)
{
	struct rdma_event_channel *ch = rdma_create_event_channel();
	struct rdma_cm_id *listen_id, *id;
	struct rdma_cm_event *ev;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_mr *recv_mr, *write_mr;
	struct rdma_conn_param param = {.responder_resources = 1, .initiator_depth = 1};
	struct remote_buf rb;
	uint8_t *recv_buf = malloc(SEND_LEN + 16), *done_buf = malloc(16);
	uint8_t *write_buf = calloc(1, WRITE_LEN + WRITE_OFF);
	struct ibv_qp_init_attr attr;
	struct ibv_mr *done_mr;
	uint32_t len;
	long bad;

	(void)arg;
	inet_pton(AF_INET, env.addr_b, &sin.sin_addr);
	if (!ch || rdma_create_id(ch, &listen_id, NULL, RDMA_PS_TCP))
		RXE_FAIL("server: rdma_create_id: %s", strerror(errno));
	if (rdma_bind_addr(listen_id, (struct sockaddr *)&sin) || rdma_listen(listen_id, 1))
		RXE_FAIL("server: bind/listen %s:%u: %s", env.addr_b, port, strerror(errno));
	pthread_mutex_lock(&lock);
	listening = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);

	ev = expect_event(ch, RDMA_CM_EVENT_CONNECT_REQUEST);
	id = ev->id;
	rdma_ack_cm_event(ev);
	RXE_ASSERT(strcmp(ibv_get_device_name(id->verbs->device), env.dev_b) == 0, "server is on %s",
		   ibv_get_device_name(id->verbs->device));
	pd = ibv_alloc_pd(id->verbs);
	cq = ibv_create_cq(id->verbs, 16, NULL, NULL, 0);
	attr = qp_attr(cq);
	RXE_ASSERT(pd && cq && rdma_create_qp(id, pd, &attr) == 0, "server resources: %s", strerror(errno));
	recv_mr = ibv_reg_mr(pd, recv_buf, SEND_LEN + 16, IBV_ACCESS_LOCAL_WRITE);
	done_mr = ibv_reg_mr(pd, done_buf, 16, IBV_ACCESS_LOCAL_WRITE);
	write_mr = ibv_reg_mr(pd, write_buf, WRITE_LEN + WRITE_OFF, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	RXE_ASSERT(recv_mr && done_mr && write_mr, "ibv_reg_mr: %s", strerror(errno));
	post_recv(id->qp, recv_mr, recv_buf, SEND_LEN + 16);
	post_recv(id->qp, done_mr, done_buf, 16);

	rb.addr = (uintptr_t)write_buf + WRITE_OFF;
	rb.rkey = write_mr->rkey;
	rb.len = WRITE_LEN;
	param.private_data = &rb;
	param.private_data_len = sizeof(rb);
	if (rdma_accept(id, &param))
		RXE_FAIL("rdma_accept: %s", strerror(errno));
	rdma_ack_cm_event(expect_event(ch, RDMA_CM_EVENT_ESTABLISHED));

	wait_wc(cq, IBV_WC_RECV, &len);
	RXE_ASSERT(len == SEND_LEN, "SEND carried %u bytes", len);
	bad = rxe_check(recv_buf, SEND_LEN, 0x5e4d);
	RXE_ASSERT(bad < 0, "SEND payload differs at byte %ld", bad);
	/* The client's second SEND follows its WRITE on the same QP, so once it
	 * arrives the WRITE has been placed. */
	wait_wc(cq, IBV_WC_RECV, &len);
	bad = rxe_check(write_buf + WRITE_OFF, WRITE_LEN, 0x3a17);
	RXE_ASSERT(bad < 0, "RDMA WRITE payload differs at byte %ld", bad);
	RXE_ASSERT(write_buf[0] == 0 && write_buf[WRITE_OFF - 1] == 0, "WRITE spilled before its range");
	printf("server: SEND %d bytes and RDMA WRITE %d bytes verified on %s\n", SEND_LEN, WRITE_LEN, env.dev_b);

	rdma_ack_cm_event(expect_event(ch, RDMA_CM_EVENT_DISCONNECTED));
	rdma_disconnect(id);
	rdma_destroy_qp(id);
	ibv_dereg_mr(recv_mr);
	ibv_dereg_mr(done_mr);
	ibv_dereg_mr(write_mr);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	rdma_destroy_id(id);
	rdma_destroy_id(listen_id);
	rdma_destroy_event_channel(ch);
	free(recv_buf);
	free(done_buf);
	free(write_buf);
	return NULL;
}

static void client(void)
{
	struct rdma_event_channel *ch = rdma_create_event_channel();
	struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct rdma_conn_param param = {.responder_resources = 1, .initiator_depth = 1, .retry_count = 7};
	struct rdma_cm_id *id;
	struct rdma_cm_event *ev;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_mr *send_mr, *write_mr;
	struct remote_buf rb;
	struct ibv_qp_init_attr attr;
	uint8_t *send_buf = malloc(SEND_LEN), *write_src = malloc(WRITE_LEN + 1);

	inet_pton(AF_INET, env.addr_a, &src.sin_addr);
	inet_pton(AF_INET, env.addr_b, &dst.sin_addr);
	if (!ch || rdma_create_id(ch, &id, NULL, RDMA_PS_TCP))
		RXE_FAIL("client: rdma_create_id: %s", strerror(errno));
	if (rdma_resolve_addr(id, (struct sockaddr *)&src, (struct sockaddr *)&dst, RESOLVE_MS))
		RXE_FAIL("rdma_resolve_addr: %s", strerror(errno));
	rdma_ack_cm_event(expect_event(ch, RDMA_CM_EVENT_ADDR_RESOLVED));
	if (rdma_resolve_route(id, RESOLVE_MS))
		RXE_FAIL("rdma_resolve_route: %s", strerror(errno));
	rdma_ack_cm_event(expect_event(ch, RDMA_CM_EVENT_ROUTE_RESOLVED));
	RXE_ASSERT(strcmp(ibv_get_device_name(id->verbs->device), env.dev_a) == 0, "client is on %s",
		   ibv_get_device_name(id->verbs->device));

	pd = ibv_alloc_pd(id->verbs);
	cq = ibv_create_cq(id->verbs, 16, NULL, NULL, 0);
	attr = qp_attr(cq);
	RXE_ASSERT(pd && cq && rdma_create_qp(id, pd, &attr) == 0, "client resources: %s", strerror(errno));
	rxe_fill(send_buf, SEND_LEN, 0x5e4d);
	/* The WRITE's source starts at an odd address too. */
	rxe_fill(write_src + 1, WRITE_LEN, 0x3a17);
	send_mr = ibv_reg_mr(pd, send_buf, SEND_LEN, 0);
	write_mr = ibv_reg_mr(pd, write_src, WRITE_LEN + 1, 0);
	RXE_ASSERT(send_mr && write_mr, "ibv_reg_mr: %s", strerror(errno));

	if (rdma_connect(id, &param))
		RXE_FAIL("rdma_connect: %s", strerror(errno));
	ev = expect_event(ch, RDMA_CM_EVENT_ESTABLISHED);
	RXE_ASSERT(ev->param.conn.private_data_len >= sizeof(rb), "no buffer descriptor in private data");
	memcpy(&rb, ev->param.conn.private_data, sizeof(rb));
	rdma_ack_cm_event(ev);
	RXE_ASSERT(rb.len == WRITE_LEN, "server offered %u bytes", rb.len);

	{
		struct ibv_sge s1 = {.addr = (uintptr_t)send_buf, .length = SEND_LEN, .lkey = send_mr->lkey};
		struct ibv_sge s2 = {.addr = (uintptr_t)write_src + 1, .length = WRITE_LEN, .lkey = write_mr->lkey};
		struct ibv_sge s3 = {.addr = (uintptr_t)send_buf, .length = 8, .lkey = send_mr->lkey};
		struct ibv_send_wr w3 = {.sg_list = &s3, .num_sge = 1, .opcode = IBV_WR_SEND};
		struct ibv_send_wr w2 = {.next = &w3, .sg_list = &s2, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
					 .wr.rdma = {.remote_addr = rb.addr, .rkey = rb.rkey}};
		struct ibv_send_wr w1 = {.next = &w2, .sg_list = &s1, .num_sge = 1, .opcode = IBV_WR_SEND}, *bad;

		if (ibv_post_send(id->qp, &w1, &bad))
			RXE_FAIL("ibv_post_send: %s", strerror(errno));
	}
	wait_wc(cq, IBV_WC_SEND, NULL);
	wait_wc(cq, IBV_WC_RDMA_WRITE, NULL);
	wait_wc(cq, IBV_WC_SEND, NULL);

	if (rdma_disconnect(id))
		RXE_FAIL("rdma_disconnect: %s", strerror(errno));
	rdma_ack_cm_event(expect_event(ch, RDMA_CM_EVENT_DISCONNECTED));
	printf("client: %s -> %s transfers complete, disconnected cleanly\n", env.dev_a, env.dev_b);
	rdma_destroy_qp(id);
	ibv_dereg_mr(send_mr);
	ibv_dereg_mr(write_mr);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	rdma_destroy_id(id);
	rdma_destroy_event_channel(ch);
	free(send_buf);
	free(write_src);
}

int main(void)
{
	pthread_t t;

	rxe_env_require(&env);
	port = rxe_port(0);
	pthread_create(&t, NULL, server, NULL);
	pthread_mutex_lock(&lock);
	while (!listening)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	client();
	pthread_join(t, NULL);
	printf("rxe_smoke: PASS\n");
	return 0;
}
