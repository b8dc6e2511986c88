/*
 * What zc_perf peers say to each other before and between runs. Pure code:
 * the hello that travels in rdma_cm private data (and the check that both
 * sides run the same test), and the fixed-size control messages.
 */
#ifndef ZC_PERF_WIRE_H
#define ZC_PERF_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "perf_opts.h"

#define PERF_MAGIC 0x5a435046u /* "ZCPF" */
#define PERF_PROTO_VERSION 1
/* An RC connect request carries at most 56 bytes of private data. */
#define PERF_CONNECT_PDATA_MAX 56
/* A reject carries at most 148; keep the reason shorter. */
#define PERF_REJECT_TEXT 120

enum perf_pdata_kind {
	PERF_PD_HELLO = 1,  /* control connection: the test parameters */
	PERF_PD_DATA = 2,   /* a test's data connection */
	PERF_PD_REJECT = 3, /* why the server refused */
};

/* Every private data block starts with this. */
struct perf_pdata_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t kind;
};

#define PERF_HELLO_LAT 0x1
#define PERF_HELLO_ALL 0x2
#define PERF_HELLO_VERIFY 0x4
#define PERF_HELLO_COPY 0x8
#define PERF_HELLO_RCACHE 0x10
#define PERF_HELLO_FRESH_REG 0x20

/*
 * The parameters both sides must agree on. Local choices (device, depths,
 * inline size, polling mode, output format) are not in it. Native byte order:
 * the magic check turns a peer of other endianness into a clear mismatch.
 */
struct perf_hello {
	struct perf_pdata_hdr hdr;
	uint32_t flags;
	char test[PERF_TEST_NAME_MAX];
	uint64_t size;
	uint64_t iters;
	uint32_t duration;
	uint32_t qps;
};

struct perf_reject {
	struct perf_pdata_hdr hdr;
	char text[PERF_REJECT_TEXT];
};

void perf_hello_from_opts(const struct perf_opts *o, struct perf_hello *h);

/* 0 if buf holds a hello of our protocol version, else -EPROTO and a reason. */
int perf_hello_decode(const void *buf, size_t len, struct perf_hello *h, char *err, size_t errlen);

/*
 * 0 if the peer runs the same test, else -EINVAL and a message naming the
 * first differing option with both values, e.g.
 * "-s differs: 4096 here, 65536 on the server".
 */
int perf_hello_compare(const struct perf_hello *mine, const struct perf_hello *peer, const char *peer_name,
		       char *err, size_t errlen);

void perf_reject_make(struct perf_reject *r, const char *text);

/* The reason in a reject from a zc_perf server, or NULL if it is not one. */
const char *perf_reject_text(const void *buf, size_t len, char *out, size_t outlen);

/* Control messages on the control QP (same binary both sides: native layout). */
enum perf_msg_type {
	PERF_MSG_READY = 1, /* barrier before a size: both sides armed */
	PERF_MSG_DONE,      /* client -> server: run finished, result attached */
	PERF_MSG_ACK,       /* server -> client: its status and CPU after a size */
	PERF_MSG_ABORT,     /* either side gives up; text says why */
};

#define PERF_MSG_TEXT 96

struct perf_msg {
	uint32_t magic;
	uint16_t type;
	int16_t status;   /* 0 or negative errno */
	uint32_t seq;     /* size index, so a stale message is caught */
	uint32_t flags;
	uint64_t size;
	uint64_t iters;
	uint64_t bytes;   /* payload bytes moved */
	double seconds;
	double bw_peak;   /* bytes/s */
	double bw_avg;    /* bytes/s */
	double msg_rate;  /* messages/s */
	double lat[7];    /* usec: min max typical avg stdev p99 p99.9 */
	double cpu_user;  /* seconds */
	double cpu_sys;
	double reg_s;     /* seconds in memory (de)registration, library tests */
	uint64_t regs;    /* registrations + deregistrations */
	char text[PERF_MSG_TEXT];
};

#define PERF_MSG_PEAK_VALID 0x1
#define PERF_MSG_HAS_LAT 0x2

const char *perf_msg_type_name(int type);

#endif
