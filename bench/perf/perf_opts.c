/*
 * zc_perf option parsing. Hand-written instead of getopt_long so that it keeps
 * no global state (the unit tests parse many command lines in one process) and
 * never prints: every problem comes back as one line in err.
 */
#include "perf_opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum opt_id {
	OPT_DEV = 1, OPT_IB_PORT, OPT_GID, OPT_SIZE, OPT_ALL, OPT_ITERS, OPT_DURATION,
	OPT_PORT, OPT_QPS, OPT_INLINE, OPT_RDMA_CM, OPT_GBITS, OPT_TX, OPT_RX, OPT_CQ_MOD,
	OPT_BIND, OPT_EVENTS, OPT_TEST, OPT_LAT, OPT_BW, OPT_VERIFY, OPT_JSON, OPT_CSV,
	OPT_WAIT, OPT_HELP, OPT_VERSION, OPT_COPY, OPT_RCACHE, OPT_NO_RCACHE_REUSE,
	OPT_BUSY_POLL, OPT_NO_MEMHOOKS,
};

struct opt_spec {
	char shrt;        /* 0: long form only */
	const char *lng;  /* perftest's spelling where perftest has the flag */
	int has_arg;
	enum opt_id id;
};

static const struct opt_spec specs[] = {
	{'d', "ib-dev", 1, OPT_DEV},
	{'i', "ib-port", 1, OPT_IB_PORT},
	{'x', "gid-index", 1, OPT_GID},
	{'s', "size", 1, OPT_SIZE},
	{'a', "all", 0, OPT_ALL},
	{'n', "iters", 1, OPT_ITERS},
	{'D', "duration", 1, OPT_DURATION},
	{'p', "port", 1, OPT_PORT},
	{'q', "qp", 1, OPT_QPS},
	{'I', "inline_size", 1, OPT_INLINE},
	{'R', "rdma_cm", 0, OPT_RDMA_CM},
	{0, "report_gbits", 0, OPT_GBITS},
	{'t', "tx-depth", 1, OPT_TX},
	{'r', "rx-depth", 1, OPT_RX},
	{'Q', "cq-mod", 1, OPT_CQ_MOD},
	{'b', "bind", 1, OPT_BIND},
	{'e', "events", 0, OPT_EVENTS},
	{0, "test", 1, OPT_TEST},
	{0, "lat", 0, OPT_LAT},
	{0, "bw", 0, OPT_BW},
	{0, "verify", 0, OPT_VERIFY},
	{0, "json", 1, OPT_JSON},
	{0, "csv", 1, OPT_CSV},
	{0, "wait", 1, OPT_WAIT},
	{'h', "help", 0, OPT_HELP},
	{'V', "version", 0, OPT_VERSION},
	{0, "copy", 0, OPT_COPY},
	{0, "rcache", 0, OPT_RCACHE},
	{0, "no-rcache-reuse", 0, OPT_NO_RCACHE_REUSE},
	{0, "busy-poll-us", 1, OPT_BUSY_POLL},
	{0, "no-memhooks", 0, OPT_NO_MEMHOOKS},
};

#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

void perf_opts_defaults(struct perf_opts *o)
{
	memset(o, 0, sizeof(*o));
	strcpy(o->test, "write");
	o->ib_port = 1;
	o->gid_index = -1;
	o->size = PERF_DEF_SIZE_BW;
	o->iters = PERF_DEF_ITERS;
	o->port = PERF_DEF_PORT;
	o->qps = 1;
	o->tx_depth = PERF_DEF_TX_BW;
	o->rx_depth = PERF_DEF_RX;
	o->cq_mod = PERF_DEF_CQ_MOD;
	o->wait_s = PERF_DEF_WAIT_S;
}

/* Decimal only: perftest's flags are decimal and "010" must not be octal. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static int num_arg(const char *flag, const char *val, uint64_t min, uint64_t max, uint64_t *out,
		   char *err, size_t errlen)
{
	if (parse_u64(val, out))
		return fail(err, errlen, "%s: '%s' is not a whole number", flag, val);
	if (*out < min || *out > max)
		return fail(err, errlen, "%s: %s is out of range (%llu..%llu)", flag, val,
			    (unsigned long long)min, (unsigned long long)max);
	return 0;
}

static int int_arg(const char *flag, const char *val, int min, int max, int *out, char *err, size_t errlen)
{
	uint64_t v;
	int rc = num_arg(flag, val, (uint64_t)min, (uint64_t)max, &v, err, errlen);

	if (rc == 0)
		*out = (int)v;
	return rc;
}

/* perftest accepts 64K and 1M; G is an extension. */
static int size_arg(const char *flag, const char *val, uint64_t *out, char *err, size_t errlen)
{
	char digits[32];
	size_t n = strlen(val);
	uint64_t mult = 1, v;

	if (n == 0 || n >= sizeof(digits))
		return fail(err, errlen, "%s: '%s' is not a size (bytes, optional K/M/G suffix)", flag, val);
	memcpy(digits, val, n + 1);
	switch (digits[n - 1]) {
	case 'K': case 'k': mult = 1ull << 10; break;
	case 'M': case 'm': mult = 1ull << 20; break;
	case 'G': case 'g': mult = 1ull << 30; break;
	default: break;
	}
	if (mult != 1)
		digits[n - 1] = '\0';
	if (parse_u64(digits, &v) || v > PERF_MAX_SIZE / mult)
		return fail(err, errlen, "%s: '%s' is not a size (bytes, optional K/M/G suffix, at most 1G)", flag,
			    val);
	v *= mult;
	if (v < 1)
		return fail(err, errlen, "%s: the message size must be at least 1 byte", flag);
	*out = v;
	return 0;
}

static int test_name_arg(const char *val, char *dst, char *err, size_t errlen)
{
	size_t i, n = strlen(val);

	if (n == 0 || n >= PERF_TEST_NAME_MAX)
		return fail(err, errlen, "--test: name must be 1..%d characters", PERF_TEST_NAME_MAX - 1);
	for (i = 0; i < n; i++)
		if (!islower((unsigned char)val[i]) && !isdigit((unsigned char)val[i]) && val[i] != '_')
			return fail(err, errlen, "--test: '%s' is not a test name (lower case letters, digits, _)",
				    val);
	memcpy(dst, val, n + 1);
	return 0;
}

static int apply(struct perf_opts *o, const struct opt_spec *sp, const char *flag, const char *val, char *err,
		 size_t errlen)
{
	switch (sp->id) {
	case OPT_DEV:
		if (!*val)
			return fail(err, errlen, "%s: empty device name", flag);
		o->dev = val;
		return 0;
	case OPT_IB_PORT:
		o->ib_port_set = 1;
		return int_arg(flag, val, 1, 255, &o->ib_port, err, errlen);
	case OPT_GID:
		return int_arg(flag, val, 0, 255, &o->gid_index, err, errlen);
	case OPT_SIZE:
		o->size_set = 1;
		return size_arg(flag, val, &o->size, err, errlen);
	case OPT_ALL:
		o->all = 1;
		return 0;
	case OPT_ITERS:
		o->iters_set = 1;
		return num_arg(flag, val, PERF_MIN_ITERS, PERF_MAX_ITERS, &o->iters, err, errlen);
	case OPT_DURATION:
		return int_arg(flag, val, 1, 86400, &o->duration, err, errlen);
	case OPT_PORT:
		return int_arg(flag, val, 1, 65535, &o->port, err, errlen);
	case OPT_QPS:
		return int_arg(flag, val, 1, 1024, &o->qps, err, errlen);
	case OPT_INLINE:
		return int_arg(flag, val, 0, 1024, &o->inline_size, err, errlen);
	case OPT_RDMA_CM:
		o->rdma_cm = 1;
		return 0;
	case OPT_GBITS:
		o->report_gbits = 1;
		return 0;
	case OPT_TX:
		o->tx_depth_set = 1;
		return int_arg(flag, val, 1, 15000, &o->tx_depth, err, errlen);
	case OPT_RX:
		return int_arg(flag, val, 1, 16384, &o->rx_depth, err, errlen);
	case OPT_CQ_MOD:
		o->cq_mod_set = 1;
		return int_arg(flag, val, 1, 1024, &o->cq_mod, err, errlen);
	case OPT_BIND:
		if (!*val)
			return fail(err, errlen, "%s: empty address", flag);
		o->bind = val;
		return 0;
	case OPT_EVENTS:
		o->events = 1;
		return 0;
	case OPT_TEST:
		return test_name_arg(val, o->test, err, errlen);
	case OPT_LAT:
		o->lat = 1;
		return 0;
	case OPT_BW:
		o->lat = 0;
		return 0;
	case OPT_VERIFY:
		o->verify = 1;
		return 0;
	case OPT_JSON:
	case OPT_CSV:
		if (!*val)
			return fail(err, errlen, "%s: empty file name", flag);
		if (sp->id == OPT_JSON)
			o->json = val;
		else
			o->csv = val;
		return 0;
	case OPT_WAIT:
		o->wait_set = 1;
		return int_arg(flag, val, 0, 86400, &o->wait_s, err, errlen);
	case OPT_HELP:
		o->help = 1;
		return 0;
	case OPT_VERSION:
		o->version = 1;
		return 0;
	case OPT_COPY:
		o->copy = 1;
		return 0;
	case OPT_RCACHE:
		o->rcache = 1;
		return 0;
	case OPT_NO_RCACHE_REUSE:
		o->fresh_reg = 1;
		return 0;
	case OPT_NO_MEMHOOKS:
		o->no_memhooks = 1;
		return 0;
	case OPT_BUSY_POLL:
		o->busy_poll_set = 1;
		if (strcmp(val, "-1") == 0) {
			o->busy_poll_us = -1;
			return 0;
		}
		return int_arg(flag, val, 0, 60000000, &o->busy_poll_us, err, errlen);
	}
	return fail(err, errlen, "%s: internal error", flag);
}

static const struct opt_spec *find_long(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < NSPECS; i++)
		if (strlen(specs[i].lng) == len && strncmp(specs[i].lng, name, len) == 0)
			return &specs[i];
	return NULL;
}

static const struct opt_spec *find_short(char c)
{
	size_t i;

	for (i = 0; i < NSPECS; i++)
		if (specs[i].shrt && specs[i].shrt == c)
			return &specs[i];
	return NULL;
}

/* --name, --name=VALUE, --name VALUE. Returns argv entries consumed or < 0. */
static int parse_long(struct perf_opts *o, int argc, char **argv, int i, char *err, size_t errlen)
{
	const char *name = argv[i] + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct opt_spec *sp = find_long(name, len);
	char flag[48];
	int rc;

	snprintf(flag, sizeof(flag), "--%.*s", (int)len, name);
	if (!sp)
		return fail(err, errlen, "unknown option '%s' (see --help)", flag);
	if (!sp->has_arg) {
		if (eq)
			return fail(err, errlen, "%s takes no value", flag);
		rc = apply(o, sp, flag, NULL, err, errlen);
		return rc < 0 ? rc : 1;
	}
	if (eq) {
		rc = apply(o, sp, flag, eq + 1, err, errlen);
		return rc < 0 ? rc : 1;
	}
	if (i + 1 >= argc)
		return fail(err, errlen, "%s needs a value", flag);
	rc = apply(o, sp, flag, argv[i + 1], err, errlen);
	return rc < 0 ? rc : 2;
}

/* -a, -aeR (bundled flags), -s4096, -s 4096. */
static int parse_short(struct perf_opts *o, int argc, char **argv, int i, char *err, size_t errlen)
{
	const char *p = argv[i] + 1;
	char flag[3] = "-?";
	int rc;

	for (; *p; p++) {
		const struct opt_spec *sp = find_short(*p);

		flag[1] = *p;
		if (!sp)
			return fail(err, errlen, "unknown option '%s' (see --help)", flag);
		if (!sp->has_arg) {
			rc = apply(o, sp, flag, NULL, err, errlen);
			if (rc < 0)
				return rc;
			continue;
		}
		if (p[1]) {
			rc = apply(o, sp, flag, p + 1, err, errlen);
			return rc < 0 ? rc : 1;
		}
		if (i + 1 >= argc)
			return fail(err, errlen, "%s needs a value", flag);
		rc = apply(o, sp, flag, argv[i + 1], err, errlen);
		return rc < 0 ? rc : 2;
	}
	return 1;
}

/* Combinations perftest refuses or that would silently drop a flag. */
static int check_conflicts(const struct perf_opts *o, char *err, size_t errlen)
{
	if (o->iters_set && o->duration)
		return fail(err, errlen, "-n and -D conflict: give an iteration count or a duration");
	if (o->all && o->size_set)
		return fail(err, errlen, "-a and -s conflict: -a runs every size from 2 B to 8 MiB");
	if (o->all && o->duration)
		return fail(err, errlen, "-a and -D conflict: duration mode runs a single size");
	if (o->duration && o->events)
		return fail(err, errlen, "-D and -e conflict: duration mode busy-polls (like perftest)");
	if (o->events && o->busy_poll_set)
		return fail(err, errlen, "-e and --busy-poll-us conflict: -e means --busy-poll-us=0");
	if (o->lat && o->qps > 1)
		return fail(err, errlen, "-q %d: multiple QPs are for bandwidth tests only (like perftest)", o->qps);
	return 0;
}

/* Mode-dependent defaults and clamps, as perftest's force_dependencies does. */
static void finish(struct perf_opts *o)
{
	if (!o->size_set)
		o->size = o->lat ? PERF_DEF_SIZE_LAT : PERF_DEF_SIZE_BW;
	if (!o->tx_depth_set)
		o->tx_depth = o->lat ? PERF_DEF_TX_LAT : PERF_DEF_TX_BW;
	if (!o->duration) {
		if ((uint64_t)o->tx_depth > o->iters)
			o->tx_depth = (int)o->iters;
		if ((uint64_t)o->rx_depth > o->iters)
			o->rx_depth = (int)o->iters;
	}
	if (o->cq_mod > o->tx_depth)
		o->cq_mod = o->tx_depth;
	if (!o->wait_set)
		o->wait_s = o->server ? 0 : PERF_DEF_WAIT_S;
	if (!o->busy_poll_set)
		o->busy_poll_us = o->events ? 0 : -1;
	/* Invalidating cache entries only means something with the cache. */
	if (o->fresh_reg)
		o->rcache = 1;
}

int perf_opts_parse(int argc, char **argv, struct perf_opts *o, char *err, size_t errlen)
{
	int i = 1, rc, only_positional = 0;

	perf_opts_defaults(o);
	if (err && errlen)
		err[0] = '\0';
	while (i < argc) {
		const char *a = argv[i];

		if (!a)
			return fail(err, errlen, "argument %d is NULL", i);
		if (!only_positional && strcmp(a, "--") == 0) {
			only_positional = 1;
			i++;
			continue;
		}
		if (!only_positional && a[0] == '-' && a[1] == '-')
			rc = parse_long(o, argc, argv, i, err, errlen);
		else if (!only_positional && a[0] == '-' && a[1])
			rc = parse_short(o, argc, argv, i, err, errlen);
		else if (!o->server) {
			if (!*a)
				return fail(err, errlen, "empty server address");
			o->server = a;
			rc = 1;
		} else
			return fail(err, errlen, "unexpected argument '%s': only one SERVER address is taken", a);
		if (rc < 0)
			return rc;
		i += rc;
	}
	if (o->help || o->version)
		return 0;
	rc = check_conflicts(o, err, errlen);
	if (rc)
		return rc;
	finish(o);
	return 0;
}

int perf_opts_sizes(const struct perf_opts *o, uint64_t *sizes, int max)
{
	int n = 0, s;

	if (!o->all) {
		if (max < 1)
			return 0;
		sizes[0] = o->size;
		return 1;
	}
	for (s = PERF_ALL_MIN_SHIFT; s <= PERF_ALL_MAX_SHIFT && n < max; s++)
		sizes[n++] = 1ull << s;
	return n;
}

uint64_t perf_opts_max_size(const struct perf_opts *o)
{
	return o->all ? 1ull << PERF_ALL_MAX_SHIFT : o->size;
}

int perf_opts_cq_mod(const struct perf_opts *o, uint64_t size)
{
	int m = o->cq_mod;

	if (size > PERF_CQ_MOD_SIZE_LIMIT && !o->cq_mod_set && !o->all && !o->events)
		m = 1;
	if (m > o->tx_depth)
		m = o->tx_depth;
	return m < 1 ? 1 : m;
}

int perf_opts_check_lib(const struct perf_opts *o, char *err, size_t errlen)
{
	int rma = strncmp(o->test, "rma", 3) == 0;

	if (o->duration)
		return fail(err, errlen, "-D: the library tests run -n iterations (no duration mode)");
	if (o->inline_size)
		return fail(err, errlen, "-I: the library decides what goes inline (up to the device's max_inline)");
	if (o->cq_mod_set)
		return fail(err, errlen, "-Q: the library signals every work request; there is no CQ moderation to set");
	if (rma && o->copy)
		return fail(err, errlen, "--copy: one-sided RMA has no copy path");
	if (rma && o->qps > 1)
		return fail(err, errlen, "-q %d: %s runs one connection (one export); -q > 1 is for stream, msg and zc",
			    o->qps, o->test);
	if (o->copy && !o->all && o->size > PERF_LIB_EAGER_MAX)
		return fail(err, errlen,
			    "--copy: -s %llu is beyond the copy path: eager_size is at most %u bytes (a 1 MiB receive "
			    "slot minus its 16-byte header); larger messages always go zero-copy by rendezvous",
			    (unsigned long long)o->size, PERF_LIB_EAGER_MAX);
	return 0;
}

void perf_opts_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage:\n"
		"  %s [options]          start a server\n"
		"  %s [options] SERVER   connect to a server (same options on both sides)\n"
		"\n"
		"Test:\n"
		"      --test=NAME          write, read, send (raw verbs; default write) or\n"
		"                           stream, msg, zc, rma, rma_read (zcrdma library)\n"
		"      --lat                ping-pong latency instead of bandwidth\n"
		"  -s, --size=SIZE          message size, K/M/G suffixes (default 65536, --lat 2)\n"
		"  -a, --all                every size from 2 B to 8 MiB (powers of two)\n"
		"  -n, --iters=N            iterations per QP (default 1000, min 5)\n"
		"  -D, --duration=SEC       run for SEC seconds instead of -n\n"
		"  -q, --qp=N               number of QPs (bandwidth only, default 1); stream, msg,\n"
		"                           zc: N connections from one context per side\n"
		"      --verify             check every payload against a pattern\n"
		"Connection:\n"
		"  -p, --port=PORT          rdma_cm port (default %d)\n"
		"  -b, --bind=ADDR          local address (server: listen on it; client: source)\n"
		"  -d, --ib-dev=DEV         expected RDMA device (rdma_cm picks it from the address)\n"
		"  -i, --ib-port=PORT       expected device port (default 1)\n"
		"  -x, --gid-index=N        GID index to validate (rdma_cm picks the GID)\n"
		"  -R, --rdma_cm            accepted; connections always use rdma_cm\n"
		"      --wait=SEC           server: wait for a client (default %d, 0 forever);\n"
		"                           client: retry until the server listens (default 0)\n"
		"Queues:\n"
		"  -t, --tx-depth=N         send queue depth (default 128, --lat 1)\n"
		"  -r, --rx-depth=N         receive queue depth (default 512)\n"
		"  -Q, --cq-mod=N           signal every Nth send (default 100; 1 above 8 KiB)\n"
		"  -I, --inline_size=N      max inline data (default 0)\n"
		"  -e, --events             wait on a completion channel instead of busy polling\n"
		"                           (library tests: busy_poll_us 0 instead of -1)\n"
		"Library tests (docs/zc_perf.md):\n"
		"      --copy               eager_size at its maximum (1048560 B): every size up\n"
		"                           to it goes through the copy path; larger sizes cannot\n"
		"      --rcache             zc/rma buffers through the registration cache instead\n"
		"                           of one zc_mr_reg region\n"
		"      --no-rcache-reuse    zc_mr_invalidate each buffer after every completion, so\n"
		"                           every transfer registers afresh (implies --rcache)\n"
		"      --no-memhooks        zc_ctx_opts.no_memhooks: the cache ignores the memory\n"
		"                           hooks (to measure what following them costs)\n"
		"      --busy-poll-us=N     zc_ctx_opts.busy_poll_us: -1 (default: never sleep),\n"
		"                           0 (= -e: sleep at once) or N: spin N us, then sleep\n"
		"Output:\n"
		"      --report_gbits       bandwidth in Gb/sec instead of MB/sec\n"
		"      --json=FILE          write the results as JSON\n"
		"      --csv=FILE           append one row per size\n"
		"  -h, --help               this text\n"
		"  -V, --version            print the version\n",
		prog, prog, PERF_DEF_PORT, PERF_DEF_WAIT_S);
}
