/* The block protocol (examples/blk/blk_proto.c): encoding, decoding and
 * validation of capsules and responses; and the examples' command-line
 * parsers its programs use (examples/common/zc_parse.c). Pure logic, no RDMA. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blk_proto.h"
#include "zc_example.h"

/* 1000 blocks of 512 bytes, 256 blocks per command, queue depth 8. */
static const struct blk_geom geom = {.block_size = 512, .capacity = 1000, .max_blocks = 256, .queue_depth = 8};

static struct blk_capsule cmd(uint8_t op, uint16_t tag, uint64_t lba, uint32_t nblocks)
{
	struct blk_capsule c = {.version = BLK_PROTO_VERSION, .opcode = op, .tag = tag, .lba = lba,
				.nblocks = nblocks};

	if (op == BLK_OP_READ || op == BLK_OP_WRITE)
		memset(c.desc.bytes, 0xa5, sizeof(c.desc.bytes)); /* opaque to the protocol */
	return c;
}

/* Encodes c, decodes it back and validates it against g. */
static int roundtrip(const struct blk_capsule *c, const struct blk_geom *g)
{
	uint8_t buf[BLK_CAPSULE_SIZE];
	struct blk_capsule d;
	uint16_t tag;
	int st;

	blk_capsule_encode(c, buf);
	st = blk_capsule_decode(buf, sizeof(buf), &d, &tag);
	if (st)
		return st;
	ck_assert_uint_eq(tag, c->tag);
	return blk_capsule_validate(&d, g);
}

START_TEST(test_capsule_roundtrip_keeps_every_field)
{
	struct blk_capsule c = cmd(BLK_OP_WRITE, 7, 0x0102030405060708ull, 0x11223344), d;
	uint8_t buf[BLK_CAPSULE_SIZE];
	uint16_t tag;

	c.flags = 0;
	blk_capsule_encode(&c, buf);
	ck_assert_int_eq(blk_capsule_decode(buf, sizeof(buf), &d, &tag), BLK_S_OK);
	ck_assert_uint_eq(d.opcode, BLK_OP_WRITE);
	ck_assert_uint_eq(d.tag, 7);
	ck_assert_uint_eq(tag, 7);
	ck_assert_uint_eq(d.lba, 0x0102030405060708ull);
	ck_assert_uint_eq(d.nblocks, 0x11223344);
	ck_assert_mem_eq(d.desc.bytes, c.desc.bytes, ZC_DESC_SIZE);
	/* Little-endian on the wire, whatever the host. */
	ck_assert_uint_eq(buf[4], 7);
	ck_assert_uint_eq(buf[5], 0);
	ck_assert_uint_eq(buf[8], 0x44);
	ck_assert_uint_eq(buf[16], 0x08);
	ck_assert_uint_eq(buf[23], 0x01);
	ck_assert_uint_eq(buf[32], 0xa5);
}
END_TEST

START_TEST(test_malformed_capsules_are_rejected)
{
	struct blk_capsule c = cmd(BLK_OP_READ, 3, 0, 1), d;
	uint8_t buf[BLK_CAPSULE_SIZE + 8];
	uint16_t tag;
	size_t off;

	blk_capsule_encode(&c, buf);
	/* Any length but 64 is not a capsule; its tag is unknown. */
	ck_assert_int_eq(blk_capsule_decode(buf, 0, &d, &tag), BLK_S_MALFORMED);
	ck_assert_uint_eq(tag, BLK_TAG_NONE);
	ck_assert_int_eq(blk_capsule_decode(buf, 63, &d, &tag), BLK_S_MALFORMED);
	ck_assert_uint_eq(tag, BLK_TAG_NONE);
	ck_assert_int_eq(blk_capsule_decode(buf, 65, &d, &tag), BLK_S_MALFORMED);
	ck_assert_int_eq(blk_capsule_decode(NULL, 64, &d, &tag), BLK_S_MALFORMED);
	/* Wrong version. */
	buf[0] = 2;
	ck_assert_int_eq(blk_capsule_decode(buf, BLK_CAPSULE_SIZE, &d, &tag), BLK_S_MALFORMED);
	buf[0] = 0;
	ck_assert_int_eq(blk_capsule_decode(buf, BLK_CAPSULE_SIZE, &d, &tag), BLK_S_MALFORMED);
	/* Every reserved byte must be zero: the tag is still known then. */
	for (off = 0; off < BLK_CAPSULE_SIZE; off++) {
		int reserved = (off >= 6 && off < 8) || (off >= 12 && off < 16) || (off >= 24 && off < 32);

		if (!reserved)
			continue;
		blk_capsule_encode(&c, buf);
		buf[off] = 1;
		ck_assert_int_eq(blk_capsule_decode(buf, BLK_CAPSULE_SIZE, &d, &tag), BLK_S_BAD_FIELD);
		ck_assert_uint_eq(tag, 3);
	}
	/* Flags are not defined: must be 0. */
	c.flags = 1;
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_FIELD);
}
END_TEST

START_TEST(test_bad_opcodes_are_rejected)
{
	static const uint8_t bad[] = {0, BLK_OP_HELLO, 7, 8, 0x7f, 0xff};
	size_t i;

	for (i = 0; i < sizeof(bad); i++) {
		struct blk_capsule c = cmd(bad[i], 0, 0, 1);

		ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_OPCODE);
	}
	for (i = BLK_OP_READ; i <= BLK_OP_CAPACITY; i++) {
		struct blk_capsule c = cmd((uint8_t)i, 0, 0, 1);

		if (i == BLK_OP_FLUSH || i == BLK_OP_CAPACITY)
			c.nblocks = 0;
		ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_OK);
	}
	ck_assert_str_eq(blk_status_str(BLK_S_BAD_OPCODE), "bad opcode");
	ck_assert_str_eq(blk_status_str(999), "unknown status");
	ck_assert_str_eq(blk_opcode_str(99), "?");
}
END_TEST

START_TEST(test_out_of_range_lba_is_rejected)
{
	struct blk_capsule c;

	c = cmd(BLK_OP_READ, 0, 999, 1); /* the last block */
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_OK);
	c = cmd(BLK_OP_READ, 0, 1000, 1); /* one past the end */
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_LBA_RANGE);
	c = cmd(BLK_OP_WRITE, 0, 999, 2); /* crosses the end */
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_LBA_RANGE);
	c = cmd(BLK_OP_READ, 0, 744, 256); /* ends exactly at the end */
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_OK);
	/* lba + nblocks must not wrap around 2^64. */
	c = cmd(BLK_OP_READ, 0, UINT64_MAX, 2);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_LBA_RANGE);
	c = cmd(BLK_OP_DISCARD, 0, UINT64_MAX - 5, 100);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_LBA_RANGE);
	/* DISCARD is not bound by max_blocks, only by the capacity. */
	c = cmd(BLK_OP_DISCARD, 0, 0, 1000);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_OK);
	c = cmd(BLK_OP_DISCARD, 0, 0, 1001);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_LBA_RANGE);
}
END_TEST

START_TEST(test_oversize_and_empty_transfers_are_rejected)
{
	struct blk_capsule c;

	c = cmd(BLK_OP_WRITE, 0, 0, 256);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_OK);
	c = cmd(BLK_OP_WRITE, 0, 0, 257);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_TOO_LARGE);
	c = cmd(BLK_OP_READ, 0, 0, UINT32_MAX); /* too large wins over out of range */
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_TOO_LARGE);
	ck_assert_uint_eq(blk_xfer_bytes(&c, 4096), (uint64_t)UINT32_MAX * 4096); /* no 32-bit overflow */
	c = cmd(BLK_OP_READ, 0, 0, 0);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_FIELD);
	c = cmd(BLK_OP_DISCARD, 0, 5, 0);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_FIELD);
}
END_TEST

START_TEST(test_fields_that_do_not_belong_are_rejected)
{
	struct blk_capsule c;

	c = cmd(BLK_OP_FLUSH, 1, 5, 0);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_FIELD);
	c = cmd(BLK_OP_CAPACITY, 1, 0, 3);
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_FIELD);
	c = cmd(BLK_OP_FLUSH, 1, 0, 0);
	c.desc.bytes[31] = 1; /* a descriptor on a command that moves no data */
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_FIELD);
	c = cmd(BLK_OP_DISCARD, 1, 0, 1);
	c.desc.bytes[0] = 1;
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_FIELD);
}
END_TEST

START_TEST(test_tags_beyond_the_queue_depth_are_rejected)
{
	struct blk_capsule c = cmd(BLK_OP_READ, 7, 0, 1);

	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_OK);
	c.tag = 8;
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_TAG);
	c.tag = BLK_TAG_NONE;
	ck_assert_int_eq(roundtrip(&c, &geom), BLK_S_BAD_TAG);
}
END_TEST

START_TEST(test_read_only_refuses_writes_and_discards)
{
	struct blk_geom ro = geom;
	struct blk_capsule c;

	ro.read_only = 1;
	c = cmd(BLK_OP_WRITE, 0, 0, 1);
	ck_assert_int_eq(roundtrip(&c, &ro), BLK_S_READ_ONLY);
	c = cmd(BLK_OP_DISCARD, 0, 0, 1);
	ck_assert_int_eq(roundtrip(&c, &ro), BLK_S_READ_ONLY);
	c = cmd(BLK_OP_READ, 0, 0, 1);
	ck_assert_int_eq(roundtrip(&c, &ro), BLK_S_OK);
	c = cmd(BLK_OP_FLUSH, 0, 0, 0);
	ck_assert_int_eq(roundtrip(&c, &ro), BLK_S_OK);
}
END_TEST

START_TEST(test_hello_negotiates_the_queue_depth)
{
	struct blk_capsule c = {.version = BLK_PROTO_VERSION, .opcode = BLK_OP_HELLO, .nblocks = 64};
	uint16_t qd = 0;

	ck_assert_int_eq(blk_hello_validate(&c, 32, &qd), BLK_S_OK);
	ck_assert_uint_eq(qd, 32); /* the target's limit wins */
	c.nblocks = 4;
	ck_assert_int_eq(blk_hello_validate(&c, 32, &qd), BLK_S_OK);
	ck_assert_uint_eq(qd, 4); /* ... or the initiator's wish */
	c.nblocks = 0;
	ck_assert_int_eq(blk_hello_validate(&c, 32, &qd), BLK_S_BAD_QD);
	c.nblocks = BLK_MAX_QD + 1;
	ck_assert_int_eq(blk_hello_validate(&c, 32, &qd), BLK_S_BAD_QD);
	c.nblocks = 4;
	c.tag = 1;
	ck_assert_int_eq(blk_hello_validate(&c, 32, &qd), BLK_S_BAD_FIELD);
	c.tag = 0;
	c.opcode = BLK_OP_READ; /* a command before the HELLO */
	ck_assert_int_eq(blk_hello_validate(&c, 32, &qd), BLK_S_NO_HELLO);
}
END_TEST

START_TEST(test_response_roundtrip_and_validation)
{
	struct blk_resp r = {.version = BLK_PROTO_VERSION, .opcode = BLK_OP_HELLO, .tag = 0x1234,
			     .status = BLK_S_IO_ERROR, .dev_flags = BLK_F_READ_ONLY, .detail = 5, .block_size = 4096,
			     .capacity = 1ull << 40, .queue_depth = 32, .max_blocks = 32},
		       d;
	uint8_t buf[BLK_RESP_SIZE];

	blk_resp_encode(&r, buf);
	ck_assert_int_eq(blk_resp_decode(buf, sizeof(buf), &d), 0);
	ck_assert_uint_eq(d.opcode, BLK_OP_HELLO);
	ck_assert_uint_eq(d.tag, 0x1234);
	ck_assert_uint_eq(d.status, BLK_S_IO_ERROR);
	ck_assert_uint_eq(d.dev_flags, BLK_F_READ_ONLY);
	ck_assert_uint_eq(d.detail, 5);
	ck_assert_uint_eq(d.block_size, 4096);
	ck_assert_uint_eq(d.capacity, 1ull << 40);
	ck_assert_uint_eq(d.queue_depth, 32);
	ck_assert_uint_eq(d.max_blocks, 32);
	ck_assert_int_eq(blk_resp_decode(buf, sizeof(buf) - 1, &d), -1);
	ck_assert_int_eq(blk_resp_decode(buf, sizeof(buf) + 1, &d), -1);
	buf[26] = 1; /* reserved */
	ck_assert_int_eq(blk_resp_decode(buf, sizeof(buf), &d), -1);
	blk_resp_encode(&r, buf);
	buf[0] = 9;
	ck_assert_int_eq(blk_resp_decode(buf, sizeof(buf), &d), -1);
	r.status = BLK_S_MAX_;
	blk_resp_encode(&r, buf);
	ck_assert_int_eq(blk_resp_decode(buf, sizeof(buf), &d), -1);
}
END_TEST

START_TEST(test_random_bytes_never_crash_the_decoder)
{
	uint8_t buf[BLK_CAPSULE_SIZE];
	struct blk_capsule c;
	struct blk_resp r;
	uint16_t tag;
	int i, j, st;

	srand(1);
	for (i = 0; i < 100000; i++) {
		for (j = 0; j < BLK_CAPSULE_SIZE; j++)
			buf[j] = (uint8_t)rand();
		if (i & 1)
			buf[0] = BLK_PROTO_VERSION;
		st = blk_capsule_decode(buf, (size_t)(i % 3 ? BLK_CAPSULE_SIZE : i % 70), &c, &tag);
		ck_assert(st == BLK_S_OK || st == BLK_S_MALFORMED || st == BLK_S_BAD_FIELD);
		if (st == BLK_S_OK) {
			st = blk_capsule_validate(&c, &geom);
			ck_assert(st >= BLK_S_OK && st < BLK_S_MAX_);
		}
		blk_resp_decode(buf, BLK_RESP_SIZE, &r);
	}
}
END_TEST

START_TEST(test_parsers)
{
	char host[64];
	uint16_t port;

	ck_assert_int_eq(zc_ex_parse_hostport("192.168.77.2:7500", host, sizeof(host), &port, 1), 0);
	ck_assert_str_eq(host, "192.168.77.2");
	ck_assert_uint_eq(port, 7500);
	ck_assert_int_eq(zc_ex_parse_hostport("10.0.0.1", host, sizeof(host), &port, 1), 0);
	ck_assert_uint_eq(port, 1);
	ck_assert_int_eq(zc_ex_parse_hostport("h:0", host, sizeof(host), &port, 1), -1);
	ck_assert_int_eq(zc_ex_parse_hostport("h:65536", host, sizeof(host), &port, 1), -1);
	ck_assert_int_eq(zc_ex_parse_hostport("h:x", host, sizeof(host), &port, 1), -1);
	ck_assert_int_eq(zc_ex_parse_hostport(":5", host, sizeof(host), &port, 1), -1);
	ck_assert_int_eq(zc_ex_parse_hostport("[fe80::1]:7500", host, sizeof(host), &port, 1), 0);
	ck_assert_str_eq(host, "fe80::1");
	ck_assert_uint_eq(port, 7500);
	ck_assert_int_eq(zc_ex_parse_hostport("fe80::1", host, sizeof(host), &port, 1), 0); /* bare IPv6: no port */
	ck_assert_str_eq(host, "fe80::1");
	ck_assert_uint_eq(port, 1);
	ck_assert_int_eq(zc_ex_parse_hostport("[fe80::1]x", host, sizeof(host), &port, 1), -1);
	ck_assert_int_eq(zc_ex_parse_hostport("[]:5", host, sizeof(host), &port, 1), -1);
	ck_assert_int_eq(zc_ex_parse_hostport("h: 5", host, sizeof(host), &port, 1), -1);
	ck_assert_int_eq(zc_ex_parse_size("4096"), 4096);
	ck_assert_int_eq(zc_ex_parse_size("4k"), 4096);
	ck_assert_int_eq(zc_ex_parse_size("256M"), 256ll << 20);
	ck_assert_int_eq(zc_ex_parse_size("1GiB"), 1ll << 30);
	ck_assert_int_eq(zc_ex_parse_size("1x"), -1);
	ck_assert_int_eq(zc_ex_parse_size("-1"), -1);
	ck_assert_int_eq(zc_ex_parse_size(""), -1);
	ck_assert_int_eq(zc_ex_parse_size("8kb"), 8192);
	ck_assert_int_eq(zc_ex_parse_size("512B"), 512);
	ck_assert_int_eq(zc_ex_parse_size(" 1"), -1);
	ck_assert_int_eq(zc_ex_parse_size("8589934592G"), -1); /* beyond LLONG_MAX */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("blk_proto");
	TCase *tc = tcase_create("blk_proto");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_capsule_roundtrip_keeps_every_field);
	tcase_add_test(tc, test_malformed_capsules_are_rejected);
	tcase_add_test(tc, test_bad_opcodes_are_rejected);
	tcase_add_test(tc, test_out_of_range_lba_is_rejected);
	tcase_add_test(tc, test_oversize_and_empty_transfers_are_rejected);
	tcase_add_test(tc, test_fields_that_do_not_belong_are_rejected);
	tcase_add_test(tc, test_tags_beyond_the_queue_depth_are_rejected);
	tcase_add_test(tc, test_read_only_refuses_writes_and_discards);
	tcase_add_test(tc, test_hello_negotiates_the_queue_depth);
	tcase_add_test(tc, test_response_roundtrip_and_validation);
	tcase_add_test(tc, test_random_bytes_never_crash_the_decoder);
	tcase_add_test(tc, test_parsers);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
