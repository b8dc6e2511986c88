/*
 * fuzz_args - libFuzzer target for the example programs' command-line
 * parsers (examples/common/zc_parse.c): zc_ex_parse_size, zc_ex_parse_int
 * and zc_ex_parse_hostport, which every program runs on its arguments.
 *
 * Input: a 4-byte prefix, then the string (cut at its first NUL byte).
 *   0      parser (% 3): 0 size, 1 int, 2 host[:port]
 *   1      int: 0x01 the bounds [LLONG_MIN, LLONG_MAX], else [-1, 60000000];
 *          host[:port]: the host buffer's size (% 64 + 1 bytes)
 *   2-3    host[:port]: le16 default port
 *
 * Each verdict is recomputed here from the grammar zc_example.h documents
 * (not from the parser's code) and must match, value included; a rejected
 * string leaves the outputs alone; the host buffer is exactly the size
 * given, so ASan catches a write past it. Any failure aborts.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zc_example.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                  \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			fprintf(stderr, "fuzz_args: %s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                              \
			abort();                                                                     \
		}                                                                                    \
	} while (0)

#define PREFIX 4

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Digits from s up to a non-digit: their count (0: none) and value; *big once it passes max. */
static size_t digits(const char *s, unsigned long long max, unsigned long long *v, int *big)
{
	size_t n = 0;

	*v = 0;
	*big = 0;
	for (; digit(s[n]); n++) {
		unsigned d = (unsigned)(s[n] - '0');

		if (*big || *v > (max - d) / 10)
			*big = 1;
		else
			*v = *v * 10 + d;
	}
	return n;
}

/* Digits, then k/m/g (any case) with an optional i, then an optional b; nothing else. */
static long long spec_size(const char *s)
{
	unsigned long long v;
	int big, shift = 0;
	size_t n = digits(s, ULLONG_MAX, &v, &big);

	if (!n || big)
		return -1;
	s += n;
	switch (*s) {
	case 'k': case 'K': shift = 10; s++; break;
	case 'm': case 'M': shift = 20; s++; break;
	case 'g': case 'G': shift = 30; s++; break;
	}
	if (shift && (*s == 'i' || *s == 'I'))
		s++;
	if (*s == 'b' || *s == 'B')
		s++;
	if (*s || v > (unsigned long long)LLONG_MAX >> shift)
		return -1;
	return (long long)(v << shift);
}

/* An optional minus, digits, nothing else, within [lo, hi]. */
static int spec_int(const char *s, long long lo, long long hi, long long *out)
{
	int neg = *s == '-', big;
	unsigned long long v, max = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
	size_t n = digits(s + neg, max, &v, &big);
	long long x;

	if (!n || big || s[neg + n])
		return -1;
	x = neg ? (v == max ? LLONG_MIN : -(long long)v) : (long long)v;
	if (x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

/* "ADDR", "ADDR:PORT", "[V6]" or "[V6]:PORT"; two or more colons unbracketed: a bare IPv6 address. */
static int spec_hostport(const char *s, size_t cap, char *host, uint16_t *port, uint16_t dflt)
{
	const char *h = s, *e, *p = NULL;
	unsigned long long v;
	int big;
	size_t n;

	if (*s == '[') {
		h = s + 1;
		e = strchr(h, ']');
		if (!e || (e[1] && e[1] != ':'))
			return -1;
		if (e[1])
			p = e + 2;
	} else {
		const char *c = strchr(s, ':');

		e = s + strlen(s);
		if (c && !strchr(c + 1, ':')) {
			e = c;
			p = c + 1;
		}
	}
	if (e == h || (size_t)(e - h) >= cap)
		return -1;
	*port = dflt;
	if (p) {
		n = digits(p, 65535, &v, &big);
		if (!n || big || p[n] || v == 0)
			return -1;
		*port = (uint16_t)v;
	}
	memcpy(host, h, (size_t)(e - h));
	host[e - h] = '\0';
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < PREFIX)
		return 0;
	s = malloc(size - PREFIX + 1);
	if (!s)
		return 0;
	memcpy(s, data + PREFIX, size - PREFIX);
	s[size - PREFIX] = '\0';
	switch (data[0] % 3) {
	case 0: {
		long long got = zc_ex_parse_size(s);

		CHECK(got == spec_size(s));
		CHECK(got >= -1);
		break;
	}
	case 1: {
		long long lo = data[1] & 1 ? LLONG_MIN : -1, hi = data[1] & 1 ? LLONG_MAX : 60000000;
		long long got = 12345, want = 12345;
		int rc = zc_ex_parse_int(s, lo, hi, &got), wrc = spec_int(s, lo, hi, &want);

		CHECK(rc == wrc);
		CHECK(got == want); /* the value, or untouched on a rejection */
		CHECK(rc || (got >= lo && got <= hi));
		break;
	}
	case 2: {
		size_t cap = (size_t)(data[1] % 64) + 1;
		uint16_t dflt = (uint16_t)(data[2] | data[3] << 8), port = 7, wport = 7;
		char *host = malloc(cap), want[65];
		int rc, wrc;

		if (!host)
			break;
		memset(host, 'x', cap);
		memset(want, 'x', sizeof(want));
		rc = zc_ex_parse_hostport(s, host, cap, &port, dflt);
		wrc = spec_hostport(s, cap, want, &wport, dflt);
		CHECK(rc == wrc);
		CHECK(rc || (!strcmp(host, want) && port == wport && *host));
		free(host);
		break;
	}
	}
	free(s);
	return 0;
}
