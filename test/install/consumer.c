/* A program built out of tree against an installed libzcrdma (see
 * consumer.sh): exits 0 when the library answers sensibly. */
#include <stdio.h>
#include <string.h>

#include <zcrdma.h>

static int is_version(const char *v)
{
	int dots = 0;

	if (!v || !*v)
		return 0;
	for (; *v; v++) {
		if (*v == '.')
			dots++;
		else if (*v < '0' || *v > '9')
			return 0;
	}
	return dots == 2;
}

int main(void)
{
	const char *v = zc_version();
	const char *e = zc_strerror(-ZC_EMEMLOCK);

	if (!is_version(v)) {
		fprintf(stderr, "consumer: zc_version() = \"%s\", want MAJOR.MINOR.PATCH\n", v ? v : "(null)");
		return 1;
	}
#ifdef ZC_EXPECT_VERSION
	if (strcmp(v, ZC_EXPECT_VERSION) != 0) {
		fprintf(stderr, "consumer: zc_version() = \"%s\", package says \"%s\"\n", v, ZC_EXPECT_VERSION);
		return 1;
	}
#endif
	if (!e || strcmp(e, "unknown error") == 0 || (!strstr(e, "memlock") && !strstr(e, "MEMLOCK"))) {
		fprintf(stderr, "consumer: zc_strerror(-ZC_EMEMLOCK) = \"%s\"\n", e ? e : "(null)");
		return 1;
	}
	printf("consumer: zcrdma %s; -ZC_EMEMLOCK: %s\n", v, e);
	return 0;
}
