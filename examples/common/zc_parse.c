/* Command-line parsers of the example programs (zc_example.h). Pure code. */
#include "zc_example.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

long long zc_ex_parse_size(const char *s)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if ((*end == 'i' || *end == 'I') && shift)
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || v > (unsigned long long)(LLONG_MAX >> shift))
		return -1;
	return (long long)(v << shift);
}

int zc_ex_parse_int(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	if (!s || !isdigit((unsigned char)(*s == '-' ? s[1] : *s)))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int zc_ex_parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port, uint16_t default_port)
{
	const char *colon = NULL, *h = s, *hend;

	if (!s)
		return -1;
	if (*s == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend)
			return -1;
		if (hend[1] == ':')
			colon = hend + 1;
		else if (hend[1])
			return -1;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* a bare IPv6 address */
		hend = colon ? colon : s + strlen(s);
	}
	if (hend == h || (size_t)(hend - h) >= hostcap)
		return -1;
	*port = default_port;
	if (colon) {
		char *end;
		unsigned long v;

		if (!isdigit((unsigned char)colon[1]))
			return -1;
		errno = 0;
		v = strtoul(colon + 1, &end, 10);
		if (errno || *end || v == 0 || v > 65535)
			return -1;
		*port = (uint16_t)v;
	}
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	return 0;
}
